//! The request log: one record per API request, for tests to assert on what clients did, and
//! optionally mirrored to a file as JSON lines (`sandbox serve --request-log FILE`), one line per
//! request in the spirit of the apiserver's audit log.

use std::io::Write as _;

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

/// One line of the JSON-lines file: `time` (real, RFC 3339) first, then every record field.
#[derive(Serialize)]
struct Line<'a> {
    time: &'a str,
    #[serde(flatten)]
    record: &'a RequestRecord,
}

/// Bounded log of requests, oldest first (the newest 200,000 are kept in memory; the file, when
/// set, gets every one).
#[derive(Debug)]
pub struct RequestLog {
    records: std::collections::VecDeque<RequestRecord>,
    limit: usize,
    sink: Option<std::io::LineWriter<std::fs::File>>,
}

impl Default for RequestLog {
    fn default() -> Self {
        Self {
            records: std::collections::VecDeque::new(),
            limit: 200_000,
            sink: None,
        }
    }
}

impl RequestLog {
    /// Also writes every record from now on to `path` (created or truncated), one JSON object
    /// per line, flushed per line so a reader sees requests as they are served.
    pub fn write_to(&mut self, path: &std::path::Path) -> std::io::Result<()> {
        self.sink = Some(std::io::LineWriter::new(std::fs::File::create(path)?));
        Ok(())
    }

    /// Appends a record, dropping the oldest beyond the limit.
    pub fn push(&mut self, record: RequestRecord) {
        if let Some(sink) = &mut self.sink {
            let line = Line {
                time: &record.real_time,
                record: &record,
            };
            let written = serde_json::to_writer(&mut *sink, &line)
                .map_err(std::io::Error::from)
                .and_then(|()| sink.write_all(b"\n"));
            if let Err(e) = written {
                // A full disk must not take the API down; the in-memory log still has it.
                tracing::warn!(error = %e, "request log file: write failed, no longer writing it");
                self.sink = None;
            }
        }
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

    /// Records kept in memory, and how many of them are effective mutations.
    #[must_use]
    pub fn counts(&self) -> (usize, usize) {
        let mutations = self
            .records
            .iter()
            .filter(|r| r.is_effective_mutation())
            .count();
        (self.records.len(), mutations)
    }

    /// Forgets every record.
    pub fn clear(&mut self) {
        self.records.clear();
    }
}
