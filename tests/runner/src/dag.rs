//! DAG `depends` expressions: task names (hyphens allowed), optionally `.Succeeded`,
//! `.Failed`, `.Errored`, `.Skipped` or `.Omitted`, combined with `&&`, `||`, `!` and
//! parentheses (Argo also has `.Daemoned`, `.AnySucceeded` and `.AllFailed`, outside the subset;
//! it has no `.Completed`). A bare name means `(T.Succeeded || T.Skipped)`, plus `T.Failed`/`T.Errored`
//! when T has `continueOn` (as Argo expands it); `dependencies: [A, B]` means `A && B`.

use std::collections::BTreeMap;

use crate::workflow::Phase;

#[derive(Clone, Debug)]
pub(crate) enum Dep {
    Task(String, Option<String>),
    Not(Box<Dep>),
    And(Box<Dep>, Box<Dep>),
    Or(Box<Dep>, Box<Dep>),
}

pub(crate) const STATUSES: [&str; 5] = ["Succeeded", "Failed", "Errored", "Skipped", "Omitted"];

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(tok.as_bytes()) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Dep, String> {
        let mut l = self.and()?;
        while self.eat("||") {
            l = Dep::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Dep, String> {
        let mut l = self.unary()?;
        while self.eat("&&") {
            l = Dep::And(Box::new(l), Box::new(self.unary()?));
        }
        Ok(l)
    }

    fn unary(&mut self) -> Result<Dep, String> {
        if self.eat("!") {
            return Ok(Dep::Not(Box::new(self.unary()?)));
        }
        if self.eat("(") {
            let d = self.or()?;
            if !self.eat(")") {
                return Err("missing ')'".into());
            }
            return Ok(d);
        }
        self.ws();
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric()
                || matches!(self.s[self.i], b'-' | b'_' | b'.'))
        {
            self.i += 1;
        }
        let word = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        if word.is_empty() {
            return Err(format!("expected a task name at offset {start}"));
        }
        match word.rsplit_once('.') {
            Some((task, status)) => {
                if !STATUSES.contains(&status) {
                    return Err(format!(
                        "{word}: .{status} is not supported (supported: .{})",
                        STATUSES.join(", .")
                    ));
                }
                Ok(Dep::Task(task.to_owned(), Some(status.to_owned())))
            }
            None => Ok(Dep::Task(word, None)),
        }
    }
}

pub(crate) fn parse_depends(text: &str) -> Result<Dep, String> {
    let mut p = P {
        s: text.as_bytes(),
        i: 0,
    };
    let d = p.or()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected {:?}", &text[p.i..]));
    }
    Ok(d)
}

impl Dep {
    pub(crate) fn tasks(&self, out: &mut Vec<String>) {
        match self {
            Dep::Task(t, _) => out.push(t.clone()),
            Dep::Not(d) => d.tasks(out),
            Dep::And(a, b) | Dep::Or(a, b) => {
                a.tasks(out);
                b.tasks(out);
            }
        }
    }

    /// Whether the expression names `task` with a status that handles its failure.
    pub(crate) fn handles_failure_of(&self, task: &str) -> bool {
        match self {
            Dep::Task(t, Some(s)) => t == task && matches!(s.as_str(), "Failed" | "Errored"),
            Dep::Task(..) => false,
            Dep::Not(d) => d.handles_failure_of(task),
            Dep::And(a, b) | Dep::Or(a, b) => {
                a.handles_failure_of(task) || b.handles_failure_of(task)
            }
        }
    }

    /// Evaluates over finished tasks' phases and whether each has continueOn failed/error.
    pub(crate) fn eval(&self, phases: &BTreeMap<String, (Phase, bool, bool)>) -> bool {
        match self {
            Dep::Task(t, status) => {
                let Some(&(p, on_failed, on_error)) = phases.get(t) else {
                    return false;
                };
                match status.as_deref() {
                    None => {
                        matches!(p, Phase::Succeeded | Phase::Skipped)
                            || (on_failed && p == Phase::Failed)
                            || (on_error && p == Phase::Error)
                    }
                    Some("Succeeded") => p == Phase::Succeeded,
                    Some("Failed") => p == Phase::Failed,
                    Some("Errored") => p == Phase::Error,
                    Some("Skipped") => p == Phase::Skipped,
                    Some(_) => p == Phase::Omitted,
                }
            }
            Dep::Not(d) => !d.eval(phases),
            Dep::And(a, b) => a.eval(phases) && b.eval(phases),
            Dep::Or(a, b) => a.eval(phases) || b.eval(phases),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_parses_and_evaluates() {
        let d = parse_depends("(verify-a.Succeeded || b.Failed) && !c-1.Skipped").unwrap();
        let mut m = BTreeMap::new();
        m.insert("verify-a".to_owned(), (Phase::Failed, false, false));
        m.insert("b".to_owned(), (Phase::Failed, false, false));
        m.insert("c-1".to_owned(), (Phase::Succeeded, false, false));
        assert!(d.eval(&m));
        m.insert("c-1".to_owned(), (Phase::Skipped, false, false));
        assert!(!d.eval(&m));
        assert!(d.handles_failure_of("b"));
        assert!(!d.handles_failure_of("verify-a"));
        let bare = parse_depends("a").unwrap();
        m.insert("a".to_owned(), (Phase::Failed, true, false));
        assert!(bare.eval(&m));
        assert!(
            parse_depends("a.Daemoned")
                .unwrap_err()
                .contains(".Daemoned")
        );
        assert!(parse_depends("a &&").is_err());
    }

    /// Argo's task results (workflow/common/ancestry.go): `.Skipped` is not `.Omitted`, and
    /// there is no `.Completed` (Argo's validation rejects it).
    #[test]
    fn depends_statuses_are_argos() {
        let mut m = BTreeMap::new();
        m.insert("a".to_owned(), (Phase::Omitted, false, false));
        assert!(!parse_depends("a.Skipped").unwrap().eval(&m));
        assert!(parse_depends("a.Omitted").unwrap().eval(&m));
        assert!(!parse_depends("a").unwrap().eval(&m));
        let err = parse_depends("a.Completed").unwrap_err();
        assert!(err.contains(".Completed is not supported"), "{err}");
        assert!(err.contains(".Omitted"), "{err}");
    }
}
