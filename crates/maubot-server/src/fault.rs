//! Crash points for the fault tests: a debug build dies (`abort`, no cleanup, as under
//! `kill -9`) at the point named by `MAUBOT_FAULT_POINT`, so that a test can kill the server
//! between two steps of a change, where a kill at a random moment almost never lands. Release
//! builds leave no trace of it.

/// Dies here if the fault tests asked for it.
#[inline]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    {
        static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let chosen = CHOSEN.get_or_init(|| std::env::var("MAUBOT_FAULT_POINT").ok());
        if chosen.as_deref() == Some(name) {
            eprintln!("fault point {name} reached: aborting");
            std::process::abort();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
