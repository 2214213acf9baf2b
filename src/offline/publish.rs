//! Publishing a finished index: builds and retrains write into a hidden
//! sibling of the target directory, and only a complete, fsynced directory
//! is swapped into place (one atomic `renameat2(RENAME_EXCHANGE)` on Linux).
//! Leftovers of builds that died are recognised by their process id and age.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::index::writer::sync_dir;

/// Leftover siblings older than this are removed even when their process id
/// is alive: after a day it has most likely been reused by another process.
const STALE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// `out`'s parent directory and final name.
fn split_out(out: &Path) -> Result<(PathBuf, &str)> {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidConfig(format!("output path {} has no usable final component", out.display())))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

/// The path of a hidden sibling of `out`: `.NAME.KIND-PID-NANOS`. Hidden and
/// manifest-less until complete, it is never mistaken for an index; the PID
/// lets a later build tell a dead build's leftovers from a running one's.
fn sibling_path(out: &Path, kind: &str) -> Result<PathBuf> {
    let (parent, name) = split_out(out)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    Ok(parent.join(format!(".{name}.{kind}-{}-{nanos}", std::process::id())))
}

/// Creates a fresh [`sibling_path`] directory (and `out`'s parent if needed).
pub(super) fn temp_sibling(out: &Path, kind: &str) -> Result<PathBuf> {
    let (parent, _) = split_out(out)?;
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let path = sibling_path(out, kind)?;
    std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// The process id in a sibling name `.NAME.KIND-PID-NANOS`, if `file` is one
/// of `out_name`'s siblings.
fn sibling_pid(file: &str, out_name: &str) -> Option<u32> {
    ["tmp", "old", "ranker"].iter().find_map(|kind| {
        let rest = file.strip_prefix(&format!(".{out_name}.{kind}-"))?;
        let (pid, nanos) = rest.split_once('-')?;
        nanos.parse::<u32>().ok()?;
        pid.parse::<u32>().ok()
    })
}

/// Whether process `pid` exists. Where that cannot be asked, assume it does
/// (only age then makes a leftover stale).
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        if pid <= 0 {
            return true; // kill(0 or negative) addresses process groups: never ask.
        }
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Removes `out`'s `.tmp`/`.old`/`.ranker` siblings left by builds that died (their
/// process is gone) or that are older than [`STALE_AFTER`]. A concurrent
/// build's directory belongs to a live process and is left alone. Best
/// effort: a leftover that cannot be removed does not fail the build.
pub(super) fn remove_stale_siblings(out: &Path) {
    let Ok((parent, name)) = split_out(out) else { return };
    let Ok(entries) = std::fs::read_dir(&parent) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| sibling_pid(f, name)) else {
            continue;
        };
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old || !process_alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Atomically exchanges two paths (Linux `renameat2(RENAME_EXCHANGE)`).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both pointers are NUL-terminated strings that outlive the call,
    // which only reads them. The raw syscall (rather than the libc wrapper)
    // works with every Linux C library.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Moves the finished `tmp` to `out`.
///
/// An existing index is replaced in one atomic step on Linux (the two
/// directories are exchanged, then the old one, now at `tmp`, is removed): at
/// every instant `out` holds the old or the new index, whatever happens to
/// the process. Where the exchange is unavailable (another OS, a filesystem
/// without it) the old index is renamed aside first and put back if the
/// second rename fails; a crash between the two renames leaves the old index
/// in a hidden `.NAME.old-…` sibling.
pub(super) fn publish(tmp: &Path, out: &Path) -> Result<()> {
    let exists = match std::fs::symlink_metadata(out) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(out, e)),
    };
    if exists {
        let is_index = out.join(crate::index::manifest::MANIFEST).is_file();
        let is_empty_dir = std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !is_index && !is_empty_dir {
            return Err(Error::InvalidConfig(format!(
                "{} exists and is not a twostage index; refusing to replace it",
                out.display()
            )));
        }
        #[cfg(target_os = "linux")]
        match exchange(tmp, out) {
            Ok(()) => {
                sync_parent(out)?;
                // `tmp` now holds the previous index; a failure to remove it
                // is cleaned up by the next build.
                let _ = std::fs::remove_dir_all(tmp);
                return Ok(());
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)) => {}
            Err(e) => return Err(Error::io(out, e)),
        }
        let old = sibling_path(out, "old")?;
        std::fs::rename(out, &old).map_err(|e| Error::io(out, e))?;
        if let Err(e) = std::fs::rename(tmp, out) {
            let _ = std::fs::rename(&old, out);
            return Err(Error::io(out, e));
        }
        sync_parent(out)?;
        let _ = std::fs::remove_dir_all(&old);
        return Ok(());
    }
    std::fs::rename(tmp, out).map_err(|e| Error::io(out, e))?;
    sync_parent(out)
}

/// fsyncs `out`'s parent so the rename that published `out` is durable.
fn sync_parent(out: &Path) -> Result<()> {
    match out.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_names_parse_only_for_their_own_target() {
        assert_eq!(sibling_pid(".idx.tmp-123-456", "idx"), Some(123));
        assert_eq!(sibling_pid(".idx.old-7-0", "idx"), Some(7));
        for other in [
            ".idx.tmp-123",
            ".idx.tmp-x-1",
            ".idx2.tmp-1-1",
            ".idx.tmp-1.tmp-2-3",
            "idx",
            ".idx.new-1-1",
        ] {
            assert_eq!(sibling_pid(other, "idx"), None, "{other}");
        }
    }

    #[test]
    fn this_process_is_alive() {
        assert!(process_alive(std::process::id()));
    }

    #[test]
    fn stale_siblings_of_dead_builds_are_removed_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("idx");
        // A process that has exited: its id is (almost certainly) free now.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let dead_dir = tmp.path().join(format!(".idx.tmp-{dead}-1"));
        let live_dir = tmp.path().join(format!(".idx.tmp-{}-2", std::process::id()));
        let other_target = tmp.path().join(format!(".other.tmp-{dead}-3"));
        for d in [&dead_dir, &live_dir, &other_target] {
            std::fs::create_dir(d).unwrap();
        }
        remove_stale_siblings(&out);
        assert!(!dead_dir.exists(), "a dead build's directory was kept");
        assert!(live_dir.exists(), "a running build's directory was removed");
        assert!(other_target.exists(), "another target's directory was touched");
    }

    #[test]
    fn publish_replaces_an_index_and_refuses_anything_else() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("idx");
        let make = |marker: &str| {
            let d = temp_sibling(&out, "tmp").unwrap();
            std::fs::write(d.join(crate::index::manifest::MANIFEST), marker).unwrap();
            d
        };
        publish(&make("one"), &out).unwrap();
        publish(&make("two"), &out).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("manifest.json")).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("idx")]);
        let file = tmp.path().join("file");
        std::fs::write(&file, b"mine").unwrap();
        assert!(publish(&make("three"), &file).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    }
}
