//! Plugin archives on disk: maubot's file names in `plugin_directories.upload`, scanning the
//! `load` directories at start, and the trash.

use std::path::{Path, PathBuf};

use maubot_types::plugin::{ArchiveLimits, PluginArchive, PluginMeta};

const LOG: &str = "maubot.loader.zip";

/// A plugin archive the server knows.
#[derive(Debug, Clone)]
pub struct PluginFile {
    pub meta: PluginMeta,
    /// Absolute.
    pub path: PathBuf,
}

/// Reads and checks an archive from disk.
pub fn read(path: &Path) -> Result<PluginFile, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let archive =
        PluginArchive::read(&bytes, &ArchiveLimits::default()).map_err(|e| e.to_string())?;
    Ok(PluginFile {
        meta: archive.meta,
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
    })
}

/// Every valid plugin of the `load` directories. Invalid files and second files of an ID are
/// moved to the trash, as maubot does.
pub fn scan(dirs: &[String], trash_dir: &str) -> Vec<PluginFile> {
    let mut found: Vec<PluginFile> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            tracing::debug!(target: LOG, dir = %dir, "Plugin directory does not exist");
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "mbp") && p.is_file())
            .collect();
        paths.sort();
        for path in paths {
            match read(&path) {
                Ok(file) if found.iter().any(|f| f.meta.id == file.meta.id) => {
                    tracing::error!(
                        target: LOG, path = %path.display(), id = %file.meta.id,
                        "Another file already has the plugin ID; moving this one to the trash"
                    );
                    trash(&path, trash_dir, "error");
                }
                Ok(file) => {
                    tracing::debug!(target: LOG, id = %file.meta.id, version = %file.meta.version, "Plugin found");
                    found.push(file);
                }
                Err(err) => {
                    tracing::error!(target: LOG, path = %path.display(), error = %err, "Invalid plugin file; moving it to the trash");
                    trash(&path, trash_dir, "error");
                }
            }
        }
    }
    found
}

/// The file name of a newly uploaded plugin.
pub fn new_file_name(meta: &PluginMeta) -> String {
    format!("{}-v{}.mbp", meta.id, meta.version.normalized())
}

/// The file name of a plugin's new version, derived from the old file name as maubot does: the
/// old version replaced by the new one, with a `-ts<ms>` suffix if the versions are equal.
pub fn replacement_file_name(
    old_name: &str,
    old_version: &str,
    new_version: &str,
    now_ms: u64,
) -> String {
    let new_version = if old_version == new_version {
        format!("{new_version}-ts{now_ms}")
    } else {
        new_version.to_owned()
    };
    match old_name.rfind(old_version) {
        Some(start) => {
            let mut end = start + old_version.len();
            // An earlier `-ts<ms>` suffix is replaced, not kept.
            let rest = &old_name[end..];
            if let Some(digits) = rest.strip_prefix("-ts") {
                let len = digits.bytes().take_while(u8::is_ascii_digit).count();
                if len > 0 {
                    end += 3 + len;
                }
            }
            format!("{}{}{}", &old_name[..start], new_version, &old_name[end..])
        }
        // maubot uses `rstrip(".mbp")`, which strips any of those characters; we strip the suffix.
        None => format!(
            "{}-v{new_version}.mbp",
            old_name.strip_suffix(".mbp").unwrap_or(old_name)
        ),
    }
}

/// Writes a file so that it is either absent or complete: a temporary file renamed into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.uploading"));
    let result = std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Removes what [`write_atomically`] left behind when the server was killed while writing.
pub fn remove_unfinished_uploads(dir: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with('.') && name.ends_with(".uploading") && path.is_file() {
            tracing::info!(target: LOG, path = %path.display(), "Removing an unfinished upload");
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Moves a file to the trash as `{unix seconds}-{reason}-{name}`, or deletes it when the trash is
/// `delete` or the move fails.
pub fn trash(path: &Path, trash_dir: &str, reason: &str) {
    let delete = |path: &Path| {
        if let Err(err) = std::fs::remove_file(path) {
            tracing::warn!(target: LOG, path = %path.display(), error = %err, "Could not delete a file");
        }
    };
    if trash_dir == "delete" {
        delete(path);
        return;
    }
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = Path::new(trash_dir).join(format!("{seconds}-{reason}-{name}"));
    let moved = std::fs::create_dir_all(trash_dir).and_then(|()| std::fs::rename(path, &target));
    if moved.is_err() {
        delete(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_replacements_like_maubot() {
        assert_eq!(
            replacement_file_name("xyz.echo-v1.0.mbp", "1.0", "1.1", 5),
            "xyz.echo-v1.1.mbp"
        );
        assert_eq!(
            replacement_file_name("xyz.echo-v1.0.mbp", "1.0", "1.0", 5),
            "xyz.echo-v1.0-ts5.mbp"
        );
        assert_eq!(
            replacement_file_name("xyz.echo-v1.0-ts5.mbp", "1.0", "1.0", 7),
            "xyz.echo-v1.0-ts7.mbp"
        );
        assert_eq!(
            replacement_file_name("echo.mbp", "1.0", "2.0", 5),
            "echo-v2.0.mbp"
        );
    }

    #[test]
    fn writes_whole_files_and_trashes_with_maubots_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("plugins").join("a.mbp");
        write_atomically(&file, b"zip").expect("write");
        assert_eq!(std::fs::read(&file).expect("read"), b"zip");
        let trash_dir = dir.path().join("trash");
        trash(&file, trash_dir.to_str().expect("utf-8"), "delete");
        assert!(!file.exists());
        let trashed: Vec<String> = std::fs::read_dir(&trash_dir)
            .expect("trash")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(trashed.len(), 1);
        assert!(trashed[0].ends_with("-delete-a.mbp"), "{trashed:?}");
    }
}
