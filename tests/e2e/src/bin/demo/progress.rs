//! Live progress from the runner's events: on a terminal one redrawn line with a bar per running
//! step (drain-node and evict-old-pods report `N/M` through ARGO_PROGRESS_FILE), elsewhere plain
//! lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use opsteps_runner::{Event, NodeKind, Phase};

/// Writes one line to stdout (the demo's output; the lint keeps `println!` out of the code).
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The progress display.
pub struct Progress {
    tty: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Running pods: display name → progress (`3/10`) or empty.
    running: BTreeMap<String, String>,
    /// Whether a live line is on screen (TTY only).
    live: bool,
    /// Last progress printed per node (plain mode prints changes only).
    printed: BTreeMap<String, String>,
}

fn bar(progress: &str) -> String {
    let Some((n, m)) = progress.split_once('/') else {
        return progress.to_owned();
    };
    let (Ok(n), Ok(m)) = (n.trim().parse::<usize>(), m.trim().parse::<usize>()) else {
        return progress.to_owned();
    };
    let width = 12;
    let filled = (n * width).checked_div(m).unwrap_or(width).min(width);
    format!(
        "[{}{}] {n}/{m}",
        "#".repeat(filled),
        ".".repeat(width - filled)
    )
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl Progress {
    /// A display for a terminal (`tty`) or a log.
    #[must_use]
    pub fn new(tty: bool) -> Self {
        Self {
            tty,
            state: Mutex::new(State::default()),
        }
    }

    /// Prints a finished line, keeping the live line below it on a terminal.
    fn line(&self, st: &mut State, text: &str) {
        let mut out = std::io::stdout().lock();
        if self.tty && st.live {
            let _ = write!(out, "\r\x1b[2K");
            st.live = false;
        }
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn redraw(&self, st: &mut State) {
        if !self.tty {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[2K");
        if st.running.is_empty() {
            st.live = false;
        } else {
            let parts: Vec<String> = st
                .running
                .iter()
                .map(|(name, p)| {
                    if p.is_empty() {
                        format!("{name} …")
                    } else {
                        format!("{name} {}", bar(p))
                    }
                })
                .collect();
            let _ = write!(out, "    ⟳ {}", parts.join("  |  "));
            st.live = true;
        }
        let _ = out.flush();
    }

    /// Handles one runner event.
    pub fn on_event(&self, e: &Event) {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match e {
            Event::NodeStarted {
                display_name,
                kind: NodeKind::Pod,
                template,
                ..
            } => {
                st.running.insert(display_name.clone(), String::new());
                if !self.tty {
                    self.line(
                        &mut st,
                        &format!("    started  {display_name} ({template})"),
                    );
                }
                self.redraw(&mut st);
            }
            Event::NodeStarted {
                display_name,
                kind: NodeKind::Suspend,
                ..
            } => {
                self.line(
                    &mut st,
                    &format!(
                        "    ⏸ {display_name}: suspended for approval; the demo answers YES (in Argo: \
                         the UI's Resume, or `argo node set` + `argo resume`)"
                    ),
                );
            }
            Event::Progress {
                display_name,
                progress,
                ..
            } => {
                if let Some(p) = st.running.get_mut(display_name) {
                    p.clone_from(progress);
                }
                if self.tty {
                    self.redraw(&mut st);
                } else if st.printed.get(display_name) != Some(progress) {
                    st.printed.insert(display_name.clone(), progress.clone());
                    self.line(&mut st, &format!("    progress {display_name}: {progress}"));
                }
            }
            Event::NodeFinished {
                display_name,
                phase,
                exit_code,
                message,
                duration,
                ..
            } if st.running.contains_key(display_name) || *phase == Phase::Skipped => {
                let was = st.running.remove(display_name);
                let text = match phase {
                    Phase::Succeeded => {
                        let p = was.filter(|p| !p.is_empty()).map(|p| format!(", {p}"));
                        format!(
                            "    ✓ {display_name} ({}{})",
                            secs(*duration),
                            p.unwrap_or_default()
                        )
                    }
                    Phase::Skipped | Phase::Omitted => format!(
                        "    – {display_name} skipped{}",
                        message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ),
                    _ => format!(
                        "    ✗ {display_name} {phase}{}: {}",
                        exit_code
                            .map(|c| format!(" (exit {c})"))
                            .unwrap_or_default(),
                        message.as_deref().unwrap_or("no message").trim()
                    ),
                };
                self.line(&mut st, &text);
                self.redraw(&mut st);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bar_fills_in_proportion() {
        assert_eq!(bar("3/12"), "[###.........] 3/12");
        assert_eq!(bar("5/5"), "[############] 5/5");
        assert_eq!(bar("0/0"), "[############] 0/0");
        assert_eq!(bar("odd"), "odd");
    }
}
