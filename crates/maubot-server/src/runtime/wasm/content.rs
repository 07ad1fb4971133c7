//! The content of the messages WebAssembly plugins send through the `matrix` interface's
//! helpers: text (plain, Markdown or HTML), replies, edits and reactions.

use serde_json::{Value, json};

use super::bindings::v0_1_0::matrix::TextFormat;

/// An `m.room.message` with text.
pub fn text(text: &str, format: TextFormat, notice: bool) -> Value {
    let msgtype = if notice { "m.notice" } else { "m.text" };
    let (body, html) = match format {
        TextFormat::Plain => (text.to_owned(), None),
        TextFormat::Markdown => {
            let html = markdown_to_html(text);
            // Text without any Markdown needs no HTML version.
            let plain = html.trim() == format!("<p>{}</p>", escape_html(text.trim()));
            (text.to_owned(), (!plain).then_some(html))
        }
        TextFormat::Html => (html_to_text(text), Some(text.to_owned())),
    };
    let mut content = json!({ "msgtype": msgtype, "body": body });
    if let Some(html) = html {
        content["format"] = json!("org.matrix.custom.html");
        content["formatted_body"] = json!(html.trim_end());
    }
    content
}

/// A text reply to `event_id`.
pub fn reply(event_id: &str, text_: &str, format: TextFormat, notice: bool) -> Value {
    let mut content = text(text_, format, notice);
    content["m.relates_to"] = json!({ "m.in_reply_to": { "event_id": event_id } });
    content
}

/// A replacement of the text of `event_id`.
pub fn edit(event_id: &str, text_: &str, format: TextFormat) -> Value {
    let new = text(text_, format, false);
    let mut content = new.clone();
    content["body"] = json!(format!("* {}", new["body"].as_str().unwrap_or_default()));
    if let Some(html) = new["formatted_body"].as_str() {
        content["formatted_body"] = json!(format!("* {html}"));
    }
    content["m.new_content"] = new;
    content["m.relates_to"] = json!({ "rel_type": "m.replace", "event_id": event_id });
    content
}

/// An `m.reaction` to `event_id`.
pub fn reaction(event_id: &str, key: &str) -> Value {
    json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": event_id, "key": key } })
}

fn markdown_to_html(markdown: &str) -> String {
    let mut options = pulldown_cmark::Options::empty();
    options.insert(pulldown_cmark::Options::ENABLE_STRIKETHROUGH);
    options.insert(pulldown_cmark::Options::ENABLE_TABLES);
    let parser = pulldown_cmark::Parser::new_ext(markdown, options);
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    html
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The text of HTML, for the plain `body`: tags dropped, line breaks kept, entities decoded.
fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[open + 1..open + close].to_ascii_lowercase();
        if tag.starts_with("br") || tag.starts_with("/p") || tag.starts_with("/li") {
            text.push('\n');
        }
        rest = &rest[open + close + 1..];
    }
    text.push_str(rest);
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_markdown_has_no_html() {
        let content = text("pong", TextFormat::Markdown, true);
        assert_eq!(content, json!({ "msgtype": "m.notice", "body": "pong" }));
        let content = text("**pong**", TextFormat::Markdown, false);
        assert_eq!(content["formatted_body"], "<p><strong>pong</strong></p>");
        assert_eq!(content["body"], "**pong**");
    }

    #[test]
    fn html_gets_a_plain_body() {
        let content = text("<b>a</b> &amp; b<br>c", TextFormat::Html, false);
        assert_eq!(content["body"], "a & b\nc");
    }

    #[test]
    fn replies_edits_and_reactions_relate_to_their_event() {
        let content = reply("$e", "pong", TextFormat::Plain, true);
        assert_eq!(content["m.relates_to"]["m.in_reply_to"]["event_id"], "$e");
        let content = edit("$e", "new", TextFormat::Plain);
        assert_eq!(content["body"], "* new");
        assert_eq!(content["m.new_content"]["body"], "new");
        assert_eq!(content["m.relates_to"]["rel_type"], "m.replace");
        assert_eq!(reaction("$e", "👍")["m.relates_to"]["key"], "👍");
    }
}
