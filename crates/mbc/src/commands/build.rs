//! `mbc build`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::archive;
use crate::cli::BuildArgs;
use crate::config::CliConfig;
use crate::error::{Failure, Result};
use crate::term::Term;

/// Builds the archive, writes it (unless only uploading) and uploads it with `--upload`.
pub async fn build(args: BuildArgs, term: &Term) -> Result<()> {
    let dir = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    // A missing login fails before any work.
    let server = if args.upload {
        let (config, _) = CliConfig::load()?;
        Some(config.resolve(args.server.as_deref())?)
    } else {
        None
    };
    let meta = archive::read_meta(&dir)?;
    let output = match &args.output {
        Some(output) if output.is_dir() || ends_with_separator(output) => {
            std::fs::create_dir_all(output).map_err(|err| {
                Failure::new(format!("cannot create {}", output.display())).caused_by(&err)
            })?;
            Some(output.join(archive::file_name(&meta)))
        }
        Some(output) => {
            confirm_overwrite(output, term)?;
            Some(output.clone())
        }
        None if args.upload => None,
        None => Some(PathBuf::from(archive::file_name(&meta))),
    };

    let built = archive::build(&dir, output.as_deref())?;
    for warning in &built.warnings {
        term.warn(warning);
    }
    let size = built.bytes.len();
    match &output {
        Some(path) => {
            write_atomically(path, &built.bytes)?;
            term.out(&format!(
                "Built {} v{} into {} ({} files, {size} bytes)",
                built.meta.id,
                built.meta.version.normalized(),
                path.display(),
                built.entries.len(),
            ));
        }
        None => term.note(&format!(
            "Built {} v{} ({} files, {size} bytes)",
            built.meta.id,
            built.meta.version.normalized(),
            built.entries.len(),
        )),
    }
    if let Some(server) = server {
        super::upload::upload_archive(&server, built.bytes, term).await?;
    }
    Ok(())
}

fn ends_with_separator(path: &Path) -> bool {
    path.as_os_str()
        .to_str()
        .is_some_and(|p| p.ends_with(std::path::MAIN_SEPARATOR) || p.ends_with('/'))
}

/// maubot's mbc asks before replacing an archive at a path given with `--output`; without a
/// terminal, giving the path is taken as the answer.
fn confirm_overwrite(path: &Path, term: &Term) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    if !term.interactive() {
        term.note(&format!("Replacing {}", path.display()));
        return Ok(());
    }
    if term.confirm(&format!("{} exists. Overwrite it?", path.display()), false)? {
        Ok(())
    } else {
        Err(Failure::new(format!("not replacing {}", path.display())))
    }
}

/// Writes a temporary file next to `path` and renames it, so that a failed build never leaves
/// half an archive.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |err: std::io::Error| {
        Failure::new(format!("cannot write {}", path.display())).caused_by(&err)
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| Failure::new(format!("{} is not a file path", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(err) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(err));
    }
    Ok(())
}
