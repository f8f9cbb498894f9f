//! Owns: replacing a file atomically and durably — the one way the daemon writes its files (pid
//! file, port file, cluster state and source files, the warm restart's data and metadata).
//! Does not: decide what is written or where (callers do), or read files back.
//!
//! A leaf module: it imports nothing from the crate, so every layer may use it.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The temporary file [`write_atomically`] writes first: `<path>.tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces `path` with `contents` through `<path>.tmp` (see [`write_via`]).
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_via(&tmp_path(path), path, contents)
}

/// Replaces `path` with `contents`: writes `tmp` (which must be in the same directory), fsyncs it,
/// renames it over `path`, then fsyncs the directory so the rename survives a crash (best effort:
/// a failure there is logged, the file is in place). Readers see the old file or the new one,
/// never a part. On a failed rename the temporary file is removed.
pub fn write_via(tmp: &Path, path: &Path, contents: &[u8]) -> io::Result<()> {
    write_with(tmp, path, |f| f.write_all(contents))
}

/// Replaces `path` with what `write` writes into `tmp` (as [`write_via`]); a failed write leaves
/// `path` as it was and removes `tmp`.
pub fn write_with(
    tmp: &Path,
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
) -> io::Result<()> {
    let written = std::fs::File::create(tmp).and_then(|mut f| {
        write(&mut f)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(tmp, path) {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        log::warn!("fsync of directory {} failed: {e}", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("ferrocache-fsutil-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.pid");
        write_atomically(&path, b"1\n").unwrap();
        write_atomically(&path, b"22\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"22\n");
        assert!(!tmp_path(&path).exists());
        assert_eq!(
            tmp_path(Path::new("/x/f.pid")),
            PathBuf::from("/x/f.pid.tmp")
        );
        let missing = dir.join("no-such-dir").join("f");
        assert!(write_atomically(&missing, b"x").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
