//! Document contents on disk, content-addressed: a file's name is the
//! lowercase hex SHA-256 of its bytes, under `root/ab/cdef…` (the first two
//! hex digits name a subfolder). A new content is written to a temp file in
//! `root/tmp`, hashed while written, then renamed into place, so a reader
//! never sees a half-written file; the same content uploaded twice is kept
//! once.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{Error, Result};

/// The content store (a folder, usually `data_dir/documents`).
#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Whether `s` is a SHA-256 as we write it (64 lowercase hex digits).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Blobs {
    /// A store rooted at `root` (created when first written to).
    pub fn new(root: impl Into<PathBuf>) -> Blobs {
        Blobs { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the content with this SH-256 is (or would be). `None` for
    /// something that is not a SHA-256 in hex, so no path escapes the root.
    pub fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        if !is_sha256_hex(sha256) {
            return None;
        }
        Some(self.root.join(&sha256[..2]).join(&sha256[2..]))
    }

    /// Starts writing a new content to a temp file.
    pub async fn stage(&self) -> Result<BlobWriter> {
        let dir = self.root.join("tmp");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io_err(&dir))?;
        let path = dir.join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(io_err(&path))?;
        Ok(BlobWriter {
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
            tmp: TempPath(Some(path)),
        })
    }

    /// Moves a staged content into place (or drops it when the same content
    /// is already there). Returns its path.
    pub async fn commit(&self, staged: StagedBlob) -> Result<PathBuf> {
        let Some(dest) = self.path_of(&staged.sha256) else {
            return Err(Error::Corrupt(format!(
                "bad content hash {}",
                staged.sha256
            )));
        };
        if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            // Deduplicated: the temp file goes when `staged` drops.
            return Ok(dest);
        }
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io_err(dir))?;
        }
        let mut staged = staged;
        let Some(tmp) = staged.tmp.0.take() else {
            return Err(Error::Corrupt("staged content already committed".into()));
        };
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(io_err(&dest))?;
        Ok(dest)
    }

    /// Opens a stored content for reading.
    pub async fn open(&self, sha256: &str) -> Result<tokio::fs::File> {
        let path = self
            .path_of(sha256)
            .ok_or_else(|| Error::Corrupt(format!("bad content hash {sha256}")))?;
        tokio::fs::File::open(&path).await.map_err(io_err(&path))
    }
}

impl Blobs {
    /// Removes what a crash can leave behind, at startup (while nothing is
    /// being uploaded): temp files of unfinished uploads in `tmp/`, and
    /// contents that no document version references (moved into place just
    /// before a database write that never committed). Returns how many temp
    /// files and how many unreferenced contents were removed.
    pub async fn clean_leftovers(
        &self,
        referenced: &std::collections::HashSet<String>,
    ) -> Result<(usize, usize)> {
        let root = self.root.clone();
        let referenced = referenced.clone();
        tokio::task::spawn_blocking(move || clean_sync(&root, &referenced))
            .await
            .map_err(|e| Error::Corrupt(format!("cleaning task failed: {e}")))?
    }
}

fn clean_sync(
    root: &Path,
    referenced: &std::collections::HashSet<String>,
) -> Result<(usize, usize)> {
    let mut temps = 0;
    let mut orphans = 0;
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(io_err(root)(e)),
    };
    for dir in entries.flatten() {
        let name = dir.file_name().to_string_lossy().into_owned();
        let path = dir.path();
        if !path.is_dir() {
            continue;
        }
        let is_tmp = name == "tmp";
        let is_prefix = name.len() == 2 && is_sha256_hex(&format!("{name}{}", "0".repeat(62)));
        if !is_tmp && !is_prefix {
            continue;
        }
        for f in std::fs::read_dir(&path).map_err(io_err(&path))?.flatten() {
            let fname = f.file_name().to_string_lossy().into_owned();
            let fpath = f.path();
            let remove = if is_tmp {
                fname.ends_with(".part")
            } else {
                let sha = format!("{name}{fname}");
                is_sha256_hex(&sha) && !referenced.contains(&sha)
            };
            if remove && fpath.is_file() {
                std::fs::remove_file(&fpath).map_err(io_err(&fpath))?;
                if is_tmp {
                    temps += 1;
                } else {
                    orphans += 1;
                }
            }
        }
    }
    Ok((temps, orphans))
}

/// A temp file removed on drop unless taken.
#[derive(Debug)]
struct TempPath(Option<PathBuf>);

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            // Best effort: a leftover in tmp/ is harmless.
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A content being written; see [`Blobs::stage`].
#[derive(Debug)]
pub struct BlobWriter {
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    size: u64,
    tmp: TempPath,
}

impl BlobWriter {
    /// Appends bytes.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let path = self.tmp.0.clone().unwrap_or_default();
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::Corrupt("write after finish".into()))?;
        file.write_all(chunk).await.map_err(io_err(&path))?;
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes to disk; the content is then ready for [`Blobs::commit`].
    pub async fn finish(mut self) -> Result<StagedBlob> {
        let path = self.tmp.0.clone().unwrap_or_default();
        if let Some(mut file) = self.file.take() {
            file.flush().await.map_err(io_err(&path))?;
            file.sync_all().await.map_err(io_err(&path))?;
        }
        let hasher = std::mem::take(&mut self.hasher);
        Ok(StagedBlob {
            sha256: hex(&hasher.finalize()),
            size: self.size,
            tmp: TempPath(self.tmp.0.take()),
        })
    }
}

/// A fully written content not yet in place (its temp file is removed if
/// it is dropped uncommitted).
#[derive(Debug)]
pub struct StagedBlob {
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    tmp: TempPath,
}

impl StagedBlob {
    /// The temp file (to read it, e.g. to verify signatures, before commit).
    pub fn path(&self) -> Option<&Path> {
        self.tmp.0.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stage_commit_dedup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::new(dir.path().join("documents"));
        let mut w = blobs.stage().await.expect("stage");
        w.write(b"hello ").await.expect("write");
        w.write(b"world").await.expect("write");
        let staged = w.finish().await.expect("finish");
        // sha256("hello world")
        assert_eq!(
            staged.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(staged.size, 11);
        let tmp = staged.path().expect("tmp").to_owned();
        assert!(tmp.exists());
        let path = blobs.commit(staged).await.expect("commit");
        assert!(!tmp.exists());
        assert!(path.ends_with("b9/4d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"));
        assert_eq!(std::fs::read(&path).expect("read"), b"hello world");

        let mut w = blobs.stage().await.expect("stage");
        w.write(b"hello world").await.expect("write");
        let staged = w.finish().await.expect("finish");
        let tmp = staged.path().expect("tmp").to_owned();
        assert_eq!(blobs.commit(staged).await.expect("commit"), path);
        assert!(!tmp.exists(), "the duplicate temp file is removed");

        // Dropped without commit: no leftovers.
        let mut w = blobs.stage().await.expect("stage");
        w.write(b"x").await.expect("write");
        let staged = w.finish().await.expect("finish");
        let tmp = staged.path().expect("tmp").to_owned();
        drop(staged);
        assert!(!tmp.exists());

        // What a crash leaves: a temp file and an unreferenced content.
        let w = blobs.stage().await.expect("stage");
        let leftover = w.tmp.0.clone().expect("tmp path");
        std::mem::forget(w);
        let mut w = blobs.stage().await.expect("stage");
        w.write(b"orphan").await.expect("write");
        let orphan = blobs
            .commit(w.finish().await.expect("finish"))
            .await
            .expect("commit");
        let keep: std::collections::HashSet<String> =
            ["b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9".to_owned()].into();
        assert_eq!(blobs.clean_leftovers(&keep).await.expect("clean"), (1, 1));
        assert!(!leftover.exists() && !orphan.exists());
        assert!(path.exists(), "referenced content kept");

        assert!(blobs.path_of("../etc/passwd").is_none());
        assert!(blobs.path_of(&"A".repeat(64)).is_none());
    }
}
