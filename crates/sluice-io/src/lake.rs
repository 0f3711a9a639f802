//! The data lake and other file locations, behind `object_store`.
//!
//! `lake://orders/2024-01-01/data.parquet` names a file relative to the project's lake root: a
//! local folder by default, or any object store when a connection named `lake` is configured
//! (`s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1`). `file:///abs/path`
//! and plain paths (relative to the project folder) name local files. Paths may hold globs
//! (`*`, `?`, `**`), which expand to the matching files in path order.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::IoError;

pub const LAKE_SCHEME: &str = "lake://";

/// Where the lake lives.
#[derive(Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    /// Set when the lake is a local folder, so local readers (DuckDB) can open files directly.
    local_root: Option<PathBuf>,
    /// How the root is shown to people (secrets masked).
    shown: String,
    project_root: PathBuf,
    /// Bucket and key prefix, when the lake is in S3 (for lineage names).
    s3: Option<(String, String)>,
}

impl fmt::Debug for Lake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lake").field("root", &self.shown).finish()
    }
}

/// One file (or a glob of files) in a store.
#[derive(Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub path: StorePath,
    /// The local file, when the store is the local file system.
    pub local: Option<PathBuf>,
    /// The name people see: `lake://…` or the local path.
    pub shown: String,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Lake {
    /// A lake in a local folder (created on first write).
    pub fn local(root: &Path, project_root: &Path) -> Result<Lake, IoError> {
        std::fs::create_dir_all(root)?;
        let store = LocalFileSystem::new_with_prefix(root)?;
        Ok(Lake {
            store: Arc::new(store),
            local_root: Some(root.to_path_buf()),
            shown: root.display().to_string(),
            project_root: project_root.to_path_buf(),
            s3: None,
        })
    }

    /// A lake in an S3-compatible store: `s3://bucket/prefix`, with the query parameters
    /// `endpoint`, `region`, `access_key_id`, `secret_access_key` (otherwise the usual AWS_*
    /// environment variables apply). `shown` is the redacted URI.
    pub fn s3(url: &Url, shown: String, project_root: &Path) -> Result<Lake, IoError> {
        let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| {
            IoError::invalid(format!(
                "{shown}: an s3:// lake needs a bucket (s3://bucket/prefix)"
            ))
        })?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (k, v) in url.query_pairs() {
            builder = match k.as_ref() {
                "endpoint" => builder
                    .with_endpoint(v.as_ref())
                    .with_allow_http(v.starts_with("http://"))
                    .with_virtual_hosted_style_request(false),
                "region" => builder.with_region(v.as_ref()),
                "access_key_id" => builder.with_access_key_id(v.as_ref()),
                "secret_access_key" => builder.with_secret_access_key(v.as_ref()),
                other => {
                    return Err(IoError::invalid(format!(
                        "{shown}: unknown parameter `{other}`; an s3:// lake takes endpoint, region, access_key_id and secret_access_key"
                    )));
                }
            };
        }
        let store: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
        let prefix = url.path().trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(Lake {
            store,
            local_root: None,
            shown,
            project_root: project_root.to_path_buf(),
            s3: Some((bucket.to_string(), prefix.to_string())),
        })
    }

    /// The OpenLineage dataset of a file (or glob) given as `lake://…`, `file://…` or a path
    /// relative to the project folder: `s3://BUCKET` and the key in an S3 lake, else `file` and
    /// the absolute path.
    pub fn dataset(&self, uri: &str) -> sluice_core::Dataset {
        if let Some(rel) = uri.strip_prefix(LAKE_SCHEME) {
            let rel = rel.trim_start_matches('/');
            if let Some((bucket, prefix)) = &self.s3 {
                let key = if prefix.is_empty() {
                    rel.to_string()
                } else {
                    format!("{prefix}/{rel}")
                };
                return sluice_core::Dataset::new(format!("s3://{bucket}"), key);
            }
            let root = self.local_root.clone().unwrap_or_default();
            return sluice_core::Dataset::new("file", root.join(rel).to_string_lossy());
        }
        let path = match uri.strip_prefix("file://") {
            Some(abs) => PathBuf::from(abs),
            None => self.project_root.join(uri),
        };
        sluice_core::Dataset::new("file", path.to_string_lossy())
    }

    /// Resolves `lake://…`, `file:///…` or a path relative to the project folder.
    pub fn resolve(&self, uri: &str) -> Result<Location, IoError> {
        if let Some(rel) = uri.strip_prefix(LAKE_SCHEME) {
            let rel = rel.trim_start_matches('/');
            let path = store_path(rel, uri)?;
            return Ok(Location {
                store: self.store.clone(),
                local: self.local_root.as_ref().map(|r| r.join(rel)),
                path,
                shown: uri.to_string(),
            });
        }
        let local = match uri.strip_prefix("file://") {
            Some(abs) => PathBuf::from(abs),
            None if uri.contains("://") => {
                return Err(IoError::invalid(format!(
                    "`{uri}`: files are read from lake://… or file://… paths, or paths relative to the project folder"
                )));
            }
            None => self.project_root.join(uri),
        };
        let text = local.to_string_lossy().to_string();
        let path = store_path(text.trim_start_matches('/'), uri)?;
        Ok(Location {
            store: Arc::new(LocalFileSystem::new()),
            path,
            local: Some(local),
            shown: uri.to_string(),
        })
    }

    /// The files a location names: itself, or every file matching its glob (sorted). A glob
    /// that matches nothing is an error; so is a plain file that does not exist.
    pub async fn expand(&self, location: &Location) -> Result<Vec<Location>, IoError> {
        let raw = location.path.as_ref();
        if !has_glob(raw) {
            location
                .store
                .head(&location.path)
                .await
                .map_err(|e| match e {
                    object_store::Error::NotFound { .. } => {
                        IoError::invalid(format!("{location}: no such file"))
                    }
                    other => other.into(),
                })?;
            return Ok(vec![location.clone()]);
        }
        let literal: Vec<&str> = raw.split('/').take_while(|part| !has_glob(part)).collect();
        let prefix = StorePath::from(literal.join("/"));
        let pattern: Vec<&str> = raw.split('/').collect();
        let mut found: Vec<StorePath> = location
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_filter(|p| {
                let parts: Vec<&str> = p.as_ref().split('/').collect();
                futures::future::ready(glob_match(&pattern, &parts))
            })
            .try_collect()
            .await?;
        found.sort();
        if found.is_empty() {
            return Err(IoError::invalid(format!("{location}: no file matches")));
        }
        let base_local = location.local.as_ref().map(|l| {
            // The local path of the store's root: the location's local path minus its store path.
            let full = l.to_string_lossy().to_string();
            PathBuf::from(full[..full.len() - raw.len()].to_string())
        });
        let shown_base = if location.shown.starts_with(LAKE_SCHEME) {
            LAKE_SCHEME
        } else {
            "/"
        };
        Ok(found
            .into_iter()
            .map(|path| Location {
                store: location.store.clone(),
                local: base_local.as_ref().map(|b| b.join(path.as_ref())),
                shown: format!("{shown_base}{}", path.as_ref()),
                path,
            })
            .collect())
    }
}

fn store_path(rel: &str, uri: &str) -> Result<StorePath, IoError> {
    StorePath::parse(rel).map_err(|e| IoError::invalid(format!("`{uri}` is not a valid path: {e}")))
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Matches path segments against glob segments: `**` spans any number of segments, `*` and `?`
/// stay within one.
fn glob_match(pattern: &[&str], parts: &[&str]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        Some((&"**", rest)) => (0..=parts.len()).any(|i| glob_match(rest, &parts[i..])),
        Some((first, rest)) => match parts.split_first() {
            Some((part, more)) => {
                segment_match(first.as_bytes(), part.as_bytes()) && glob_match(rest, more)
            }
            None => false,
        },
    }
}

fn segment_match(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            segment_match(&p[1..], s) || (!s.is_empty() && segment_match(p, &s[1..]))
        }
        (Some(b'?'), Some(_)) => segment_match(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => segment_match(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        glob_match(
            &p.split('/').collect::<Vec<_>>(),
            &s.split('/').collect::<Vec<_>>(),
        )
    }

    #[test]
    fn globs() {
        assert!(m("raw/orders/*.csv", "raw/orders/2024-01-01.csv"));
        assert!(!m("raw/orders/*.csv", "raw/orders/x/2024-01-01.csv"));
        assert!(m("raw/**/*.csv", "raw/orders/x/2024-01-01.csv"));
        assert!(m("raw/**/*.csv", "raw/a.csv"));
        assert!(m("raw/2024-01-0?.csv", "raw/2024-01-09.csv"));
        assert!(!m("raw/2024-01-0?.csv", "raw/2024-01-10.csv"));
    }

    #[tokio::test]
    async fn local_lake_resolves_and_expands() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(&dir.path().join("lake"), dir.path()).unwrap();
        for f in ["raw/a/1.csv", "raw/a/2.csv", "raw/b.json"] {
            let p = dir.path().join("lake").join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        let loc = lake.resolve("lake://raw/a/*.csv").unwrap();
        let files = lake.expand(&loc).await.unwrap();
        let shown: Vec<_> = files.iter().map(|f| f.shown.clone()).collect();
        assert_eq!(shown, ["lake://raw/a/1.csv", "lake://raw/a/2.csv"]);
        assert_eq!(
            files[0].local.as_ref().unwrap(),
            &dir.path().join("lake/raw/a/1.csv")
        );
        let err = lake
            .expand(&lake.resolve("lake://raw/none.csv").unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "lake://raw/none.csv: no such file");
        let rel = lake.resolve("lake/raw/b.json").unwrap();
        assert_eq!(lake.expand(&rel).await.unwrap().len(), 1);
    }
}
