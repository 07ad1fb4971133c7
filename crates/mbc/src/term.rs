//! The terminal: results on stdout; notes, warnings, errors, prompts and progress on stderr;
//! colours only on terminals and never with `NO_COLOR`; prompts only when stdin is a terminal.

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use crate::error::{Context as _, Failure, Result};

/// How text is styled (ANSI SGR codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Error,
    Warning,
    Hint,
    Dim,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Error => "1;31",
            Style::Warning => "1;33",
            Style::Hint => "1;36",
            Style::Dim => "2",
        }
    }
}

/// Where output goes and how it looks.
#[derive(Debug, Clone)]
pub struct Term {
    stdout_color: bool,
    stderr_color: bool,
    stderr_tty: bool,
    interactive: bool,
}

impl Term {
    /// Looks at the real stdin, stdout and stderr and at `NO_COLOR`.
    pub fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let stderr_tty = io::stderr().is_terminal();
        Term {
            stdout_color: !no_color && io::stdout().is_terminal(),
            stderr_color: !no_color && stderr_tty,
            stderr_tty,
            interactive: io::stdin().is_terminal(),
        }
    }

    /// No terminal anywhere, as in tests.
    #[cfg(test)]
    pub fn detect_for_tests() -> Self {
        Term {
            stdout_color: false,
            stderr_color: false,
            stderr_tty: false,
            interactive: false,
        }
    }

    /// Whether the user can be asked: stdin is a terminal.
    pub fn interactive(&self) -> bool {
        self.interactive
    }

    /// `text` in `style` if stdout gets colours.
    pub fn paint_out(&self, style: Style, text: &str) -> String {
        paint(self.stdout_color, style, text)
    }

    fn paint_err(&self, style: Style, text: &str) -> String {
        paint(self.stderr_color, style, text)
    }

    /// A line of the command's result, on stdout.
    pub fn out(&self, line: &str) {
        let mut stdout = io::stdout().lock();
        // A closed stdout (`mbc logs | head`) is not worth a panic.
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }

    /// A line about what is going on, on stderr.
    pub fn note(&self, line: &str) {
        eprintln!("{line}");
    }

    /// `warning: ...` on stderr.
    pub fn warn(&self, message: &str) {
        eprintln!("{} {message}", self.paint_err(Style::Warning, "warning:"));
    }

    /// Prints a failure: its details, then `error:`, `caused by:` and `hint:` lines, on stderr.
    pub fn report(&self, failure: &Failure) {
        let mut stderr = io::stderr().lock();
        if let Some(details) = &failure.details {
            let _ = writeln!(stderr, "{}", details.trim_end());
        }
        let _ = writeln!(
            stderr,
            "{} {}",
            self.paint_err(Style::Error, "error:"),
            failure.message
        );
        for cause in &failure.causes {
            let _ = writeln!(
                stderr,
                "  {} {cause}",
                self.paint_err(Style::Dim, "caused by:")
            );
        }
        for hint in &failure.hints {
            let _ = writeln!(stderr, "{} {hint}", self.paint_err(Style::Hint, "hint:"));
        }
    }

    /// Asks for a line on stderr/stdin; an empty answer takes `default`. Only call when
    /// [`Term::interactive`].
    pub fn ask(&self, question: &str, default: Option<&str>) -> Result<String> {
        loop {
            match default {
                Some(default) if !default.is_empty() => eprint!("{question} [{default}]: "),
                _ => eprint!("{question}: "),
            }
            let _ = io::stderr().flush();
            let mut line = String::new();
            let read = io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the answer")?;
            if read == 0 {
                return Err(Failure::new("no answer (end of input)"));
            }
            let answer = line.trim();
            match (answer.is_empty(), default) {
                (false, _) => return Ok(answer.to_owned()),
                (true, Some(default)) => return Ok(default.to_owned()),
                (true, None) => continue,
            }
        }
    }

    /// Asks for a secret without echoing it. Only call when [`Term::interactive`].
    pub fn ask_secret(&self, question: &str) -> Result<String> {
        rpassword::prompt_password(format!("{question}: ")).context("cannot read the password")
    }

    /// Asks a yes/no question. Only call when [`Term::interactive`].
    pub fn confirm(&self, question: &str, default: bool) -> Result<bool> {
        let choices = if default { "Y/n" } else { "y/N" };
        loop {
            let answer = self.ask(&format!("{question} [{choices}]"), Some(""))?;
            match answer.to_ascii_lowercase().as_str() {
                "" => return Ok(default),
                "y" | "yes" => return Ok(true),
                "n" | "no" => return Ok(false),
                _ => continue,
            }
        }
    }

    /// A value the command needs: `given`, else asked for on a terminal (`default` offered),
    /// else `default`, else an error naming the flag.
    pub fn value(
        &self,
        given: Option<String>,
        question: &str,
        default: Option<&str>,
        flag: &str,
    ) -> Result<String> {
        if let Some(value) = given {
            return Ok(value);
        }
        if self.interactive {
            return self.ask(question, default);
        }
        match default {
            Some(default) => Ok(default.to_owned()),
            None => Err(missing(question, flag)),
        }
    }

    /// A secret the command needs: `given`, else asked for on a terminal, else an error naming
    /// the flag.
    pub fn secret(&self, given: Option<String>, question: &str, flag: &str) -> Result<String> {
        match given {
            Some(value) => Ok(value),
            None if self.interactive => self.ask_secret(question),
            None => Err(missing(question, flag)),
        }
    }

    /// A progress bar on stderr for `total` bytes, if stderr is a terminal and `total` is at
    /// least [`Progress::THRESHOLD`].
    pub fn progress(&self, what: &str, total: u64) -> Option<Progress> {
        (self.stderr_tty && total >= Progress::THRESHOLD).then(|| Progress::new(what, total))
    }
}

/// "Plugin ID (e.g. x)" → "missing plugin id (give it with --id)".
fn missing(question: &str, flag: &str) -> Failure {
    let what = question.split(" (").next().unwrap_or(question);
    Failure::new(format!(
        "missing {} (give it with {flag})",
        what.to_lowercase()
    ))
    .hint("mbc asks for missing values only when it runs in a terminal")
}

fn paint(enabled: bool, style: Style, text: &str) -> String {
    if enabled {
        format!("\x1b[{}m{text}\x1b[0m", style.code())
    } else {
        text.to_owned()
    }
}

/// A one-line progress bar on stderr, redrawn at most ten times a second.
#[derive(Debug)]
pub struct Progress {
    what: String,
    total: u64,
    done: u64,
    last_draw: Option<Instant>,
    finished: bool,
}

impl Progress {
    /// Transfers smaller than this (1 MiB) get no progress bar.
    pub const THRESHOLD: u64 = 1024 * 1024;
    const WIDTH: u64 = 30;

    fn new(what: &str, total: u64) -> Self {
        Progress {
            what: what.to_owned(),
            total: total.max(1),
            done: 0,
            last_draw: None,
            finished: false,
        }
    }

    /// Counts `bytes` more as done; the line ends when all is done.
    pub fn advance(&mut self, bytes: u64) {
        if self.finished {
            return;
        }
        self.done = (self.done + bytes).min(self.total);
        let due = self
            .last_draw
            .is_none_or(|last| last.elapsed() >= Duration::from_millis(100));
        if self.done == self.total {
            self.draw();
            eprintln!();
            self.finished = true;
        } else if due {
            self.draw();
        }
    }

    fn draw(&mut self) {
        self.last_draw = Some(Instant::now());
        eprint!("\r{}\x1b[K", self.line());
        let _ = io::stderr().flush();
    }

    fn line(&self) -> String {
        let filled = self.done * Self::WIDTH / self.total;
        let mut bar = "=".repeat(filled as usize);
        if filled < Self::WIDTH {
            bar.push('>');
            bar.push_str(&" ".repeat((Self::WIDTH - filled - 1) as usize));
        }
        format!(
            "{} [{bar}] {:>3}% {}/{}",
            self.what,
            self.done * 100 / self.total,
            mebibytes(self.done),
            mebibytes(self.total)
        )
    }
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line() {
        let mut progress = Progress::new("Uploading", 4 * 1024 * 1024);
        assert_eq!(
            progress.line(),
            "Uploading [>                             ]   0% 0.0 MiB/4.0 MiB"
        );
        progress.done = 2 * 1024 * 1024;
        assert!(
            progress
                .line()
                .contains("[===============>              ]  50% 2.0 MiB")
        );
        progress.done = progress.total;
        assert!(
            progress
                .line()
                .contains(&format!("[{}] 100%", "=".repeat(30)))
        );
    }

    #[test]
    fn no_colours_when_disabled() {
        assert_eq!(paint(false, Style::Error, "error:"), "error:");
        assert_eq!(
            paint(true, Style::Error, "error:"),
            "\x1b[1;31merror:\x1b[0m"
        );
    }
}
