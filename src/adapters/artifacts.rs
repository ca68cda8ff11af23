//! Where certificates, chains, encrypted keys and audit archives are kept.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::ports::BoxFuture;

/// A key-value store for files.
pub trait ArtifactStore: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under `key`, durably, replacing nothing: an existing key is an error.
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Reads `key` back.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u8>>>;
    /// Where it stores, for messages (`local:/var/lib/...`, `s3://bucket`).
    fn location(&self) -> String;
    /// The bucket name recorded in `certificates.s3_bucket` (`local` for the local store).
    fn bucket(&self) -> String;
}

/// A directory on this machine: the default when no S3 bucket is configured.
#[derive(Debug, Clone)]
pub struct LocalArtifactStore {
    root: PathBuf,
}

impl LocalArtifactStore {
    /// A store under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> anyhow::Result<PathBuf> {
        // Keys are relative paths of plain segments: nothing may escape the root.
        let safe = !key.is_empty()
            && key.split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            });
        anyhow::ensure!(safe, "{key:?} is not a valid artifact key");
        Ok(self.root.join(key))
    }
}

impl ArtifactStore for LocalArtifactStore {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let path = self.path(key)?;
            tokio::task::spawn_blocking(move || write_durably(&path, &bytes)).await?
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u8>>> {
        Box::pin(async move {
            let path = self.path(key)?;
            tokio::fs::read(&path)
                .await
                .with_context(|| format!("could not read {}", path.display()))
        })
    }

    fn location(&self) -> String {
        format!("local:{}", self.root.display())
    }

    fn bucket(&self) -> String {
        "local".to_owned()
    }
}

/// Writes to a temporary file, syncs it, and links it into place without replacing anything.
/// Artifacts (audit archives, encrypted keys, certificates) are the service's own: files are
/// 0600 and new directories 0700, whatever the umask.
fn write_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let parent = path
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no parent directory", path.display()))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .with_context(|| format!("could not create {}", parent.display()))?;
    let temporary = parent.join(format!(".{}.partial", uuid::Uuid::new_v4()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::hard_link(&temporary, path)?;
        std::fs::File::open(parent)?.sync_all()
    })();
    let _ = std::fs::remove_file(&temporary);
    result.with_context(|| format!("could not write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn artifacts_are_readable_by_the_service_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalArtifactStore::new(dir.path());
        store
            .put("keys/2026/app.key.json", b"{}".to_vec())
            .await
            .expect("put");
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(&dir.path().join("keys/2026/app.key.json")), 0o600);
        assert_eq!(mode(&dir.path().join("keys/2026")), 0o700);
        assert_eq!(mode(&dir.path().join("keys")), 0o700);
    }

    #[tokio::test]
    async fn files_round_trip_and_are_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalArtifactStore::new(dir.path());
        store
            .put("audit/2026/11/a.jsonl", b"one\n".to_vec())
            .await
            .expect("put");
        assert_eq!(
            store.get("audit/2026/11/a.jsonl").await.expect("get"),
            b"one\n"
        );
        assert!(
            store
                .put("audit/2026/11/a.jsonl", b"two\n".to_vec())
                .await
                .is_err()
        );
        assert_eq!(
            store.get("audit/2026/11/a.jsonl").await.expect("get"),
            b"one\n"
        );
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalArtifactStore::new(dir.path());
        for key in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            assert!(store.put(key, Vec::new()).await.is_err(), "{key:?}");
        }
    }
}
