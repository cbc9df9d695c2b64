//! The request log: one record per API request, for tests to assert on what clients did.

use serde::Serialize;

/// One API request as the sandbox saw it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string ("" when absent).
    pub query: String,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, `evict`), or "" for non-resource paths.
    pub verb: String,
    /// Resource plural (with `.group` for non-core), or "" for non-resource paths.
    pub resource: String,
    /// Subresource (`status`, `eviction`, `scale`, ...), or "".
    pub subresource: String,
    /// Namespace from the path, or "".
    pub namespace: String,
    /// Object name from the path, or "".
    pub name: String,
    /// HTTP status sent (0 when the connection was dropped by a fault).
    pub status: u16,
    /// Authenticated user, or "" when unauthenticated.
    pub user: String,
    /// User-Agent header.
    pub user_agent: String,
    /// Whether the verb changes state (create, update, patch, delete, deletecollection, evict).
    pub mutating: bool,
    /// Whether the request carried `dryRun=All`.
    pub dry_run: bool,
    /// Virtual time when the request arrived.
    pub virtual_time: String,
    /// Real (wall-clock) time when the request arrived.
    pub real_time: String,
}

impl RequestRecord {
    /// Whether an authenticated client attempted a real write: a mutating verb without
    /// `dryRun=All` (refused attempts included, unauthenticated ones not).
    #[must_use]
    pub fn is_effective_mutation(&self) -> bool {
        self.mutating && !self.dry_run && self.status != 401
    }
}

/// Bounded log of requests, oldest first (the newest 200,000 are kept).
#[derive(Debug)]
pub struct RequestLog {
    records: std::collections::VecDeque<RequestRecord>,
    limit: usize,
}

impl Default for RequestLog {
    fn default() -> Self {
        Self {
            records: std::collections::VecDeque::new(),
            limit: 200_000,
        }
    }
}

impl RequestLog {
    /// Appends a record, dropping the oldest beyond the limit.
    pub fn push(&mut self, record: RequestRecord) {
        if self.records.len() >= self.limit {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    /// All records, oldest first.
    #[must_use]
    pub fn all(&self) -> Vec<RequestRecord> {
        self.records.iter().cloned().collect()
    }

    /// Forgets every record.
    pub fn clear(&mut self) {
        self.records.clear();
    }
}
