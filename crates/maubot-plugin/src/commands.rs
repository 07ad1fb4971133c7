//! Commands (`!calc add 1 2`) and passive patterns (any message matching a regular expression),
//! routed from the `m.text` messages of anyone but the bot.
//!
//! A command is declared by a spec: its name (with `|`-separated aliases), optional
//! subcommand words, then its parameters:
//!
//! | spec part | meaning |
//! |---|---|
//! | `calc add` | the command `!calc add` (`calc` alone answers with its subcommands) |
//! | `ping\|p` | `!ping`, also `!p` |
//! | `<a>` | a required word (`"two words"` in double quotes is one word) |
//! | `[a]` | an optional word |
//! | `<text...>` | the rest of the message, required |
//! | `[text...]` | the rest of the message, optional |
//!
//! Words after the last parameter are ignored. A message missing a required parameter is
//! answered with the command's usage, and so is a handler returning [`Error::Usage`] (as
//! [`Args::parse`] does for a value that does not parse).

use std::fmt;
use std::str::FromStr;

use regex_lite::Regex;

use crate::event::Event;
use crate::{Error, Result};

/// A command's handler: the plugin, the message, its arguments.
pub type CommandFn<P> = fn(&mut P, &Event, &Args) -> Result<()>;
/// A passive pattern's handler: the plugin, the message, the first match.
pub type PassiveFn<P> = fn(&mut P, &Event, &Captures) -> Result<()>;

/// A plugin's commands and passive patterns, from [`crate::Plugin::handlers`].
///
/// ```
/// # use maubot_plugin::{Args, Captures, Event, Handlers, Result};
/// struct Calc;
/// fn add(_: &mut Calc, event: &Event, args: &Args) -> Result<()> {
///     let sum = args.parse::<i64>("a")? + args.parse::<i64>("b")?;
///     event.reply(&sum.to_string()).map(drop)
/// }
/// fn thanks(_: &mut Calc, event: &Event, _: &Captures) -> Result<()> {
///     event.react("👍").map(drop)
/// }
/// let handlers = Handlers::new()
///     .command("calc add <a> <b>", "Add two numbers", add)
///     .passive(r"(?i)\bthanks\b", thanks);
/// ```
pub struct Handlers<P> {
    prefix: String,
    commands: Vec<Command<P>>,
    passives: Vec<Passive<P>>,
    /// Specs and patterns that did not parse; the instance does not start with any.
    errors: Vec<String>,
}

struct Command<P> {
    /// The command's words; each a list of accepted spellings (name and aliases).
    path: Vec<Vec<String>>,
    params: Vec<Param>,
    help: String,
    handler: CommandFn<P>,
}

struct Passive<P> {
    regex: Regex,
    handler: PassiveFn<P>,
}

#[derive(Debug, Clone, PartialEq)]
struct Param {
    name: String,
    required: bool,
    rest: bool,
}

impl<P> fmt::Debug for Handlers<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handlers")
            .field("prefix", &self.prefix)
            .field(
                "commands",
                &self
                    .commands
                    .iter()
                    .map(|c| c.usage(""))
                    .collect::<Vec<_>>(),
            )
            .field(
                "passives",
                &self
                    .passives
                    .iter()
                    .map(|p| p.regex.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("errors", &self.errors)
            .finish()
    }
}

impl<P> Default for Handlers<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// What a message asks for.
#[derive(Debug, PartialEq)]
enum Routed {
    /// Run the command at this index with these arguments.
    Run(usize, Args),
    /// Answer with this text (a missing argument, a command group without its subcommand).
    Usage(String),
}

impl<P> Handlers<P> {
    /// No handlers yet; commands start with `!`.
    pub fn new() -> Self {
        Handlers {
            prefix: "!".to_owned(),
            commands: Vec::new(),
            passives: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Commands start with `prefix` instead of `!`.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// Adds a command: its spec (see the [module](self)), a line of help for its usage, and the
    /// handler.
    pub fn command(mut self, spec: &str, help: &str, handler: CommandFn<P>) -> Self {
        match parse_spec(spec) {
            Ok((path, params)) => self.commands.push(Command {
                path,
                params,
                help: help.to_owned(),
                handler,
            }),
            Err(err) => self.errors.push(format!("command `{spec}`: {err}")),
        }
        self
    }

    /// Adds a passive handler, called with the first match of `pattern` (a regular expression,
    /// `regex-lite` syntax: `(?i)` for any case) in a message's body.
    pub fn passive(mut self, pattern: &str, handler: PassiveFn<P>) -> Self {
        match Regex::new(pattern) {
            Ok(regex) => self.passives.push(Passive { regex, handler }),
            Err(err) => self.errors.push(format!("pattern `{pattern}`: {err}")),
        }
        self
    }

    /// What went wrong declaring the handlers (the instance does not start if anything did).
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Runs the handlers an event asks for: for an `m.text` message of anyone but `own_user`,
    /// the command it names and every passive pattern it matches. A failing handler is logged;
    /// a usage error is answered.
    pub(crate) fn dispatch(&self, plugin: &mut P, event: &Event, own_user: &str) {
        if !event.is_message("m.text") || event.sender == own_user {
            return;
        }
        let Some(body) = event.body.as_deref() else {
            return;
        };
        match self.route(body) {
            Some(Routed::Run(index, args)) => {
                let command = &self.commands[index];
                if let Err(err) = (command.handler)(plugin, event, &args) {
                    self.failed(event, command, err);
                }
            }
            Some(Routed::Usage(text)) => answer(event, &text),
            None => {}
        }
        for passive in &self.passives {
            if let Some(captures) = Captures::first(&passive.regex, body)
                && let Err(err) = (passive.handler)(plugin, event, &captures)
            {
                crate::error!("passive `{}` failed: {err}", passive.regex.as_str());
            }
        }
    }

    fn failed(&self, event: &Event, command: &Command<P>, err: Error) {
        match err {
            Error::Usage(reason) => answer(
                event,
                &format!("{reason}\n\n**Usage:** {}", command.usage(&self.prefix)),
            ),
            err => crate::error!("command {} failed: {err}", command.usage(&self.prefix)),
        }
    }

    /// Which command `body` names, with its arguments.
    fn route(&self, body: &str) -> Option<Routed> {
        let text = body.strip_prefix(&self.prefix)?;
        let mut best: Option<(usize, &str)> = None;
        // How many words the closest partial match had, and its first words.
        let mut partial = 0;
        for (index, command) in self.commands.iter().enumerate() {
            let mut rest = text;
            let mut matched = 0;
            for spellings in &command.path {
                match split_word(rest) {
                    Some((word, after)) if spellings.iter().any(|s| s == word) => {
                        rest = after;
                        matched += 1;
                    }
                    _ => break,
                }
            }
            if matched == command.path.len() {
                if best.is_none_or(|(b, _)| self.commands[b].path.len() < matched) {
                    best = Some((index, rest));
                }
            } else {
                partial = partial.max(matched);
            }
        }
        if let Some((index, rest)) = best {
            let command = &self.commands[index];
            return Some(match parse_args(&command.params, rest) {
                Ok(args) => Routed::Run(index, args),
                Err(reason) => Routed::Usage(format!(
                    "{reason}\n\n**Usage:** {}",
                    command.usage(&self.prefix)
                )),
            });
        }
        if partial == 0 {
            return None;
        }
        // A group without a (known) subcommand: list the commands under what was given.
        let given: Vec<&str> = words(text).take(partial).collect();
        let mut lines = Vec::new();
        for command in &self.commands {
            let under = command.path.len() > partial
                && command.path[..partial]
                    .iter()
                    .zip(&given)
                    .all(|(spellings, word)| spellings.iter().any(|s| s == word));
            if under {
                lines.push(format!("* {}", command.usage(&self.prefix)));
            }
        }
        Some(Routed::Usage(format!(
            "**Usage:** {}{} <subcommand> [...]\n\n{}",
            self.prefix,
            given.join(" "),
            lines.join("\n")
        )))
    }
}

/// Answers a message, logging a failure to do so.
fn answer(event: &Event, text: &str) {
    if let Err(err) = event.reply(text) {
        crate::warn!("cannot answer {}: {err}", event.event_id);
    }
}

impl<P> Command<P> {
    /// `!calc add <a> <b> - Add two numbers`
    fn usage(&self, prefix: &str) -> String {
        let mut usage = prefix.to_owned();
        let path: Vec<&str> = self.path.iter().map(|s| s[0].as_str()).collect();
        usage.push_str(&path.join(" "));
        for param in &self.params {
            let (open, close) = if param.required {
                ('<', '>')
            } else {
                ('[', ']')
            };
            let dots = if param.rest { "..." } else { "" };
            usage.push_str(&format!(" {open}{}{dots}{close}", param.name));
        }
        if !self.help.is_empty() {
            usage.push_str(" - ");
            usage.push_str(&self.help);
        }
        usage
    }
}

type Spec = (Vec<Vec<String>>, Vec<Param>);

fn parse_spec(spec: &str) -> Result<Spec, String> {
    let mut path = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    for part in spec.split_whitespace() {
        let param = match (part.chars().next(), part.chars().last()) {
            (Some('<'), Some('>')) => Some(true),
            (Some('['), Some(']')) => Some(false),
            _ => None,
        };
        let Some(required) = param else {
            if !params.is_empty() {
                return Err(format!("the word `{part}` comes after a parameter"));
            }
            if part.contains(['<', '>', '[', ']', '"']) {
                return Err(format!("`{part}` is neither a word nor a parameter"));
            }
            path.push(part.split('|').map(str::to_owned).collect());
            continue;
        };
        let inner = &part[1..part.len() - 1];
        let (name, rest) = match inner.strip_suffix("...") {
            Some(name) => (name, true),
            None => (inner, false),
        };
        if name.is_empty() {
            return Err(format!("the parameter `{part}` has no name"));
        }
        if params.last().is_some_and(|last| last.rest) {
            return Err(format!("`{part}` comes after the rest of the message"));
        }
        if required && params.last().is_some_and(|last| !last.required) {
            return Err(format!("the required `{part}` comes after an optional one"));
        }
        params.push(Param {
            name: name.to_owned(),
            required,
            rest,
        });
    }
    if path.is_empty() {
        return Err("it has no name".to_owned());
    }
    Ok((path, params))
}

/// The next whitespace-separated word and what follows it.
fn split_word(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    if text.is_empty() {
        return None;
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    Some((&text[..end], &text[end..]))
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
}

/// The next argument: a word, or a `"double-quoted"` string (with `\"` and `\\`).
fn split_argument(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start();
    let Some(quoted) = text.strip_prefix('"') else {
        return split_word(text).map(|(word, rest)| (word.to_owned(), rest));
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &quoted[i + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => value.push('\\'),
            },
            c => value.push(c),
        }
    }
    // No closing quote: the word as written.
    split_word(text).map(|(word, rest)| (word.to_owned(), rest))
}

fn parse_args(params: &[Param], mut text: &str) -> Result<Args, String> {
    let mut values = Vec::new();
    for param in params {
        let value = if param.rest {
            let rest = text.trim();
            text = "";
            (!rest.is_empty()).then(|| rest.to_owned())
        } else {
            match split_argument(text) {
                Some((value, after)) => {
                    text = after;
                    Some(value)
                }
                None => None,
            }
        };
        if value.is_none() && param.required {
            return Err(format!("Missing <{}>", param.name));
        }
        values.push((param.name.clone(), value));
    }
    Ok(Args { values })
}

/// A command's arguments, by the names its spec gives them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Args {
    values: Vec<(String, Option<String>)>,
}

impl Args {
    /// The argument `name`, if it was given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, value)| value.as_deref())
    }

    /// The argument `name`, or `""` if it was not given (a required one always is).
    pub fn str(&self, name: &str) -> &str {
        self.get(name).unwrap_or_default()
    }

    /// The argument `name` parsed as a `T`; [`Error::Usage`] if it is missing or does not
    /// parse, so that `?` answers the sender with the command's usage.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<T> {
        self.parse_opt(name)?
            .ok_or_else(|| Error::usage(format_args!("Missing <{name}>")))
    }

    /// The argument `name` parsed as a `T` if it was given.
    pub fn parse_opt<T: FromStr>(&self, name: &str) -> Result<Option<T>> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => value
                .parse()
                .map(Some)
                .map_err(|_| Error::usage(format_args!("`{value}` is not a valid <{name}>"))),
        }
    }
}

/// The groups of a passive pattern's match: 0 is the whole match.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Captures {
    groups: Vec<Option<String>>,
    names: Vec<Option<String>>,
}

impl Captures {
    fn first(regex: &Regex, text: &str) -> Option<Captures> {
        let captures = regex.captures(text)?;
        Some(Captures {
            groups: captures
                .iter()
                .map(|group| group.map(|m| m.as_str().to_owned()))
                .collect(),
            names: regex
                .capture_names()
                .map(|name| name.map(str::to_owned))
                .collect(),
        })
    }

    /// The whole match.
    pub fn whole(&self) -> &str {
        self.get(0).unwrap_or_default()
    }

    /// Group `index` (1 is the first parenthesised group), if it matched.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.groups.get(index).and_then(|group| group.as_deref())
    }

    /// The group named `name` (`(?P<name>...)`), if it matched.
    pub fn name(&self, name: &str) -> Option<&str> {
        let index = self.names.iter().position(|n| n.as_deref() == Some(name))?;
        self.get(index)
    }

    /// How many groups the pattern has, the whole match included.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Never: there is always the whole match.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct P;
    fn noop(_: &mut P, _: &Event, _: &Args) -> Result<()> {
        Ok(())
    }
    fn passive(_: &mut P, _: &Event, _: &Captures) -> Result<()> {
        Ok(())
    }

    fn handlers() -> Handlers<P> {
        Handlers::new()
            .command("ping|p", "Answer pong", noop)
            .command("echo <text...>", "Repeat", noop)
            .command("calc add <a> <b>", "Add two numbers", noop)
            .command("calc mul <a> <b> [times]", "Multiply", noop)
            .command("greet [name]", "", noop)
            .command("remind <seconds> <text...>", "", noop)
    }

    fn run(handlers: &Handlers<P>, body: &str) -> Option<(usize, Vec<(&'static str, String)>)> {
        match handlers.route(body)? {
            Routed::Run(index, args) => Some((
                index,
                args.values
                    .into_iter()
                    .filter_map(|(name, value)| Some((&*String::leak(name), value?)))
                    .collect(),
            )),
            Routed::Usage(text) => panic!("usage for {body}: {text}"),
        }
    }

    fn usage(handlers: &Handlers<P>, body: &str) -> String {
        match handlers.route(body) {
            Some(Routed::Usage(text)) => text,
            other => panic!("not a usage for {body}: {other:?}"),
        }
    }

    #[test]
    fn commands_and_aliases() {
        let h = handlers();
        assert!(h.errors().is_empty(), "{:?}", h.errors());
        assert_eq!(run(&h, "!ping"), Some((0, vec![])));
        assert_eq!(run(&h, "!p"), Some((0, vec![])));
        assert_eq!(run(&h, "!ping with words"), Some((0, vec![])));
        assert_eq!(run(&h, "!pingx"), None);
        assert_eq!(run(&h, "ping"), None);
        assert_eq!(
            run(&h, "!Ping"),
            None,
            "names are case-sensitive, as in maubot"
        );
        assert_eq!(run(&h, "!unknown"), None);
        assert_eq!(
            run(&h, "! ping"),
            Some((0, vec![])),
            "spaces after the prefix are skipped"
        );
    }

    #[test]
    fn the_rest_of_the_message_keeps_its_spacing() {
        let h = handlers();
        assert_eq!(
            run(&h, "!echo  hello   *world*\nline two "),
            Some((1, vec![("text", "hello   *world*\nline two".into())]))
        );
        assert!(
            usage(&h, "!echo").starts_with("Missing <text>\n\n**Usage:** !echo <text...> - Repeat")
        );
        assert_eq!(
            run(&h, "!remind 10 take \"the\" cake"),
            Some((
                5,
                vec![
                    ("seconds", "10".into()),
                    ("text", "take \"the\" cake".into())
                ]
            ))
        );
    }

    #[test]
    fn subcommands_and_optional_words() {
        let h = handlers();
        assert_eq!(
            run(&h, "!calc add 1 2"),
            Some((2, vec![("a", "1".into()), ("b", "2".into())]))
        );
        assert_eq!(
            run(&h, "!calc mul 3 4"),
            Some((3, vec![("a", "3".into()), ("b", "4".into())]))
        );
        assert_eq!(
            run(&h, "!calc mul 3 4 5 6"),
            Some((
                3,
                vec![("a", "3".into()), ("b", "4".into()), ("times", "5".into())]
            ))
        );
        assert_eq!(run(&h, "!greet"), Some((4, vec![])));
        assert_eq!(
            run(&h, "!greet \"Ada Lovelace\" extra"),
            Some((4, vec![("name", "Ada Lovelace".into())]))
        );
        assert_eq!(
            usage(&h, "!calc add 1"),
            "Missing <b>\n\n**Usage:** !calc add <a> <b> - Add two numbers"
        );
        assert_eq!(
            usage(&h, "!calc"),
            "**Usage:** !calc <subcommand> [...]\n\n\
             * !calc add <a> <b> - Add two numbers\n\
             * !calc mul <a> <b> [times] - Multiply"
        );
        assert!(usage(&h, "!calc div 1 2").starts_with("**Usage:** !calc <subcommand>"));
    }

    #[test]
    fn typed_arguments() {
        let args =
            parse_args(&parse_spec("x <a> <b> [c]").expect("spec").1, "12 twelve").expect("args");
        assert_eq!(args.parse::<i64>("a"), Ok(12));
        assert_eq!(
            args.parse::<i64>("b"),
            Err(Error::Usage("`twelve` is not a valid <b>".into()))
        );
        assert_eq!(args.parse_opt::<i64>("c"), Ok(None));
        assert_eq!(
            args.parse::<u8>("c"),
            Err(Error::Usage("Missing <c>".into()))
        );
        assert_eq!(args.str("b"), "twelve");
        assert_eq!(args.str("c"), "");
    }

    #[test]
    fn quoted_words() {
        assert_eq!(
            split_argument(r#" "a \"b\" c" d"#),
            Some((r#"a "b" c"#.to_owned(), " d"))
        );
        assert_eq!(
            split_argument("\"open end"),
            Some(("\"open".to_owned(), " end"))
        );
        assert_eq!(split_argument("   "), None);
    }

    #[test]
    fn bad_specs_are_errors_not_panics() {
        let h: Handlers<P> = Handlers::new()
            .command("<a>", "", noop)
            .command("x [a] <b>", "", noop)
            .command("x <a...> <b>", "", noop)
            .command("x <a> y", "", noop)
            .command("x <>", "", noop)
            .passive("(unclosed", passive);
        assert_eq!(h.errors().len(), 6, "{:?}", h.errors());
        assert!(h.errors()[5].starts_with("pattern `(unclosed`"));
    }

    #[test]
    fn passive_patterns() {
        let regex = Regex::new(r"(?i)(?P<name>\S+)\+\+").expect("regex");
        let captures = Captures::first(&regex, "thanks Alice++ and bob++").expect("match");
        assert_eq!(captures.whole(), "Alice++");
        assert_eq!(captures.get(1), Some("Alice"));
        assert_eq!(captures.name("name"), Some("Alice"));
        assert_eq!(captures.len(), 2);
        assert_eq!(Captures::first(&regex, "nothing here"), None);
        let any_case = Regex::new(r"(?i)\bhello\b").expect("regex");
        assert!(Captures::first(&any_case, "well HeLLo there").is_some());
        assert!(Captures::first(&any_case, "othello").is_none());
    }

    #[test]
    fn another_prefix() {
        let h: Handlers<P> = Handlers::new().prefix("?").command("ping", "", noop);
        assert_eq!(run(&h, "?ping"), Some((0, vec![])));
        assert_eq!(run(&h, "!ping"), None);
    }
}
