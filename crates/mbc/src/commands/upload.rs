//! `mbc upload`.

use reqwest::StatusCode;

use crate::cli::UploadArgs;
use crate::config::{CliConfig, Server};
use crate::error::{Failure, Result};
use crate::http::Api;
use crate::term::Term;

/// Uploads an archive from a file.
pub async fn upload(args: UploadArgs, term: &Term) -> Result<()> {
    let (config, _) = CliConfig::load()?;
    let server = config.resolve(args.server.as_deref())?;
    let bytes = std::fs::read(&args.path).map_err(|err| {
        let failure = Failure::new(format!("cannot read {}", args.path.display())).caused_by(&err);
        if err.kind() == std::io::ErrorKind::NotFound {
            failure.hint("build the archive first: mbc build")
        } else {
            failure
        }
    })?;
    upload_archive(&server, bytes, term).await
}

/// `POST /plugins/upload?allow_override=true`: a new plugin, or a new version replacing the
/// old one.
pub async fn upload_archive(server: &Server, bytes: Vec<u8>, term: &Term) -> Result<()> {
    let api = Api::new(&server.url, Some(server.token.clone()))?;
    let progress = term.progress("Uploading", bytes.len() as u64);
    let answer = api
        .post_archive("/plugins/upload?allow_override=true", bytes, progress)
        .await?;
    if !matches!(answer.status, StatusCode::OK | StatusCode::CREATED) {
        return Err(api.failure(&answer));
    }
    let id = answer.body["id"].as_str().unwrap_or("?");
    let version = answer.body["version"].as_str().unwrap_or("?");
    term.out(&format!(
        "Plugin {id} v{version} uploaded to {} successfully.",
        server.url
    ));
    Ok(())
}
