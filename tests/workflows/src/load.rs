//! Reading manifests: every YAML document of every file, as JSON values.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One YAML document.
#[derive(Clone, Debug)]
pub struct Doc {
    /// The file it came from.
    pub file: PathBuf,
    /// Position in the file (0-based).
    pub index: usize,
    /// The document.
    pub value: Value,
}

/// A file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading failed.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The YAML did not parse (duplicate keys included).
    #[error("{path} is not valid YAML: {message}")]
    Yaml {
        /// The path.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

impl Doc {
    /// `kind`, or "" when missing.
    #[must_use]
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    /// `metadata.name`, or "" when missing.
    #[must_use]
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    /// `Kind/name`, how findings name a document.
    #[must_use]
    pub fn object(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }

    /// Whether this is an Argo Workflows object.
    #[must_use]
    pub fn is_argo(&self) -> bool {
        self.value["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("argoproj.io/"))
    }
}

/// Parses YAML text (several documents allowed); empty documents are dropped.
pub fn load_str(path: &Path, text: &str) -> Result<Vec<Doc>, LoadError> {
    let values: Vec<Value> =
        serde_saphyr::from_str_multiple(text).map_err(|e| LoadError::Yaml {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    Ok(values
        .into_iter()
        .filter(|v| !v.is_null())
        .enumerate()
        .map(|(index, value)| Doc {
            file: path.to_owned(),
            index,
            value,
        })
        .collect())
}

/// Reads one file.
pub fn load_file(path: &Path) -> Result<Vec<Doc>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    load_str(path, &text)
}

/// Every `*.yaml`/`*.yml` file under `dir`, sorted by path.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| LoadError::Read {
            path: d.clone(),
            source,
        })?;
        for e in entries {
            let p = e
                .map_err(|source| LoadError::Read {
                    path: d.clone(),
                    source,
                })?
                .path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every document of every YAML file under `dir`.
pub fn load_dir(dir: &Path) -> Result<Vec<Doc>, LoadError> {
    let mut out = Vec::new();
    for f in yaml_files(dir)? {
        out.extend(load_file(&f)?);
    }
    Ok(out)
}
