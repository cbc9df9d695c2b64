//! Two tiny expression languages, as far as our templates use them:
//! - `when` (govaluate, evaluated after tag substitution): numbers, quoted and bare-word
//!   strings, comparisons, `&&`, `||`, `!`, parentheses, `=~`/`!~`;
//! - expr-lang for `retryStrategy.expression` and `valueFrom.expression`: variables such as
//!   `lastRetry.exitCode` or `steps.green.status`, string and number literals, comparisons,
//!   `&&`/`and`, `||`/`or`, `!`/`not`, `?:`, `asInt()` and `asFloat()`.
//!
//! Anything else is an error naming it, never a guess.

use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Str(s) => f.write_str(s),
            Val::Num(n) => write!(f, "{n}"),
            Val::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lang {
    /// govaluate, for `when`: bare words are strings.
    Govaluate,
    /// expr-lang: bare words are variables.
    Expr,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Word(String),
    Op(&'static str),
}

#[derive(Clone, Debug)]
pub(crate) enum Ast {
    Lit(Val),
    Var(String),
    Not(Box<Ast>),
    Bin(&'static str, Box<Ast>, Box<Ast>),
    Call(String, Vec<Ast>),
    Cond(Box<Ast>, Box<Ast>, Box<Ast>),
}

const OPS: [&str; 17] = [
    "==", "!=", "<=", ">=", "&&", "||", "=~", "!~", "<", ">", "!", "(", ")", "?", ":", ",", "-",
];

fn tokenize(text: &str, lang: Lang) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            if i < chars.len() && (chars[i].is_alphabetic() || chars[i] == '_') {
                // "1abc": govaluate reads a number then a word; refuse rather than guess.
                return Err(format!("unexpected {:?} after the number {s}", chars[i]));
            }
            out.push(Tok::Num(
                s.parse().map_err(|_| format!("bad number {s:?}"))?,
            ));
        } else if c == '\'' || c == '"' {
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == c)
                .ok_or_else(|| format!("unterminated string in {text:?}"))?;
            out.push(Tok::Str(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.')) {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = OPS
                .iter()
                .find(|op| rest.starts_with(**op))
                .ok_or_else(|| format!("unsupported character {c:?}"))?;
            if *op == "-" {
                return Err(match lang {
                    Lang::Govaluate => "an unquoted '-' is read as minus by govaluate: single-quote values containing '-'".to_owned(),
                    Lang::Expr => "arithmetic ('-') is not supported".to_owned(),
                });
            }
            out.push(Tok::Op(op));
            i += op.len();
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    lang: Lang,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        let hit = match self.peek() {
            Some(Tok::Op(o)) => *o == op,
            Some(Tok::Word(w)) if self.lang == Lang::Expr => {
                matches!(
                    (op, w.as_str()),
                    ("&&", "and") | ("||", "or") | ("!", "not")
                )
            }
            _ => false,
        };
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn ternary(&mut self) -> Result<Ast, String> {
        let cond = self.or()?;
        if self.eat_op("?") {
            if self.lang == Lang::Govaluate {
                return Err("'?:' is not supported in when".to_owned());
            }
            let a = self.ternary()?;
            if !self.eat_op(":") {
                return Err("expected ':' in a '?:' expression".to_owned());
            }
            let b = self.ternary()?;
            return Ok(Ast::Cond(Box::new(cond), Box::new(a), Box::new(b)));
        }
        Ok(cond)
    }

    fn or(&mut self) -> Result<Ast, String> {
        let mut left = self.and()?;
        while self.eat_op("||") {
            left = Ast::Bin("||", Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Ast, String> {
        let mut left = self.cmp()?;
        while self.eat_op("&&") {
            left = Ast::Bin("&&", Box::new(left), Box::new(self.cmp()?));
        }
        Ok(left)
    }

    fn cmp(&mut self) -> Result<Ast, String> {
        let left = self.unary()?;
        for op in ["==", "!=", "<=", ">=", "<", ">", "=~", "!~"] {
            if self.eat_op(op) {
                if self.lang == Lang::Expr && op.contains('~') {
                    return Err(format!("{op:?} is not supported"));
                }
                return Ok(Ast::Bin(op, Box::new(left), Box::new(self.unary()?)));
            }
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Ast, String> {
        if self.eat_op("!") {
            return Ok(Ast::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Ast, String> {
        let tok = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or("unexpected end of expression")?;
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Ast::Lit(Val::Num(n))),
            Tok::Str(s) => Ok(Ast::Lit(Val::Str(s))),
            Tok::Op("(") => {
                let inner = self.ternary()?;
                if !self.eat_op(")") {
                    return Err("missing ')'".to_owned());
                }
                Ok(inner)
            }
            Tok::Op(op) => Err(format!("unexpected {op:?}")),
            Tok::Word(w) if w == "true" || w == "false" => Ok(Ast::Lit(Val::Bool(w == "true"))),
            Tok::Word(w) if self.lang == Lang::Govaluate => Ok(Ast::Lit(Val::Str(w))),
            Tok::Word(w) => {
                if !self.eat_op("(") {
                    return Ok(Ast::Var(w));
                }
                if !matches!(w.as_str(), "asInt" | "asFloat") {
                    return Err(format!(
                        "function {w}() is not supported (supported: asInt, asFloat)"
                    ));
                }
                let arg = self.ternary()?;
                if !self.eat_op(")") {
                    return Err(format!("{w}() takes one argument"));
                }
                Ok(Ast::Call(w, vec![arg]))
            }
        }
    }
}

/// Parses an expression; the error says what is not understood.
pub(crate) fn parse(text: &str, lang: Lang) -> Result<Ast, String> {
    let mut p = Parser {
        toks: tokenize(text, lang)?,
        pos: 0,
        lang,
    };
    let ast = p.ternary()?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {t:?} after a complete expression"));
    }
    Ok(ast)
}

/// The variables an expression reads.
pub(crate) fn variables(ast: &Ast, out: &mut Vec<String>) {
    match ast {
        Ast::Lit(_) => {}
        Ast::Var(v) => out.push(v.clone()),
        Ast::Not(a) => variables(a, out),
        Ast::Bin(_, a, b) => {
            variables(a, out);
            variables(b, out);
        }
        Ast::Call(_, args) => args.iter().for_each(|a| variables(a, out)),
        Ast::Cond(c, a, b) => {
            variables(c, out);
            variables(a, out);
            variables(b, out);
        }
    }
}

fn num(v: &Val) -> Option<f64> {
    match v {
        Val::Num(n) => Some(*n),
        Val::Str(s) => s.trim().parse().ok(),
        Val::Bool(_) => None,
    }
}

fn truthy(v: &Val) -> Result<bool, String> {
    match v {
        Val::Bool(b) => Ok(*b),
        other => Err(format!("{other} is not a boolean")),
    }
}

/// Evaluates with `var` resolving variables (expr-lang variables are strings, as in Argo).
pub(crate) fn eval(ast: &Ast, var: &dyn Fn(&str) -> Option<String>) -> Result<Val, String> {
    Ok(match ast {
        Ast::Lit(v) => v.clone(),
        Ast::Var(name) => Val::Str(var(name).ok_or_else(|| format!("unknown variable {name}"))?),
        Ast::Not(a) => Val::Bool(!truthy(&eval(a, var)?)?),
        Ast::Cond(c, a, b) => {
            if truthy(&eval(c, var)?)? {
                eval(a, var)?
            } else {
                eval(b, var)?
            }
        }
        Ast::Call(f, args) => {
            let v = eval(&args[0], var)?;
            let n = num(&v).ok_or_else(|| format!("{f}({v:?}): not a number"))?;
            Val::Num(if f == "asInt" { n.trunc() } else { n })
        }
        Ast::Bin(op, lhs, rhs) => {
            let (l, r) = (eval(lhs, var)?, eval(rhs, var)?);
            match *op {
                "&&" => Val::Bool(truthy(&l)? && truthy(&r)?),
                "||" => Val::Bool(truthy(&l)? || truthy(&r)?),
                "==" | "!=" => {
                    let eq = match (&l, &r) {
                        (Val::Num(x), Val::Num(y)) => (x - y).abs() < f64::EPSILON,
                        (x, y) => x == y,
                    };
                    Val::Bool(if *op == "==" { eq } else { !eq })
                }
                "=~" | "!~" => {
                    let re = regex::Regex::new(&r.to_string())
                        .map_err(|e| format!("bad regular expression {r}: {e}"))?;
                    let m = re.is_match(&l.to_string());
                    Val::Bool(if *op == "=~" { m } else { !m })
                }
                // Numbers numerically, strings by bytes (govaluate's ltStage/gtStage and expr's
                // comparisons); a number against a string is an error in both.
                _ => {
                    let ord = match (&l, &r) {
                        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
                        (Val::Str(x), Val::Str(y)) => Some(x.as_str().cmp(y.as_str())),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        format!("{l} {op} {r}: '{op}' compares two numbers or two strings")
                    })?;
                    Val::Bool(match *op {
                        "<" => ord.is_lt(),
                        ">" => ord.is_gt(),
                        "<=" => ord.is_le(),
                        _ => ord.is_ge(),
                    })
                }
            }
        }
    })
}

/// Evaluates a `when` after substitution.
pub(crate) fn eval_when(text: &str) -> Result<bool, String> {
    let ast = parse(text, Lang::Govaluate)?;
    truthy(&eval(&ast, &|_| None)?)
}

/// Strips `{{=` … `}}` around an expression (Argo's docs show both forms).
pub(crate) fn unwrap_expression(text: &str) -> &str {
    let t = text.trim();
    t.strip_prefix("{{=")
        .and_then(|t| t.strip_suffix("}}"))
        .unwrap_or(t)
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(text: &str, vars: &[(&str, &str)]) -> Result<Val, String> {
        let ast = parse(text, Lang::Expr)?;
        eval(&ast, &|n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn when_compares_bare_words_numbers_and_regexes() {
        assert!(eval_when("YES == YES").unwrap());
        assert!(!eval_when("NO == YES").unwrap());
        assert!(eval_when("'a-b' == 'a-b'").unwrap());
        assert!(eval_when("3 > 2 && !(1 >= 2) || false").unwrap());
        assert!(eval_when("5 <= 5.0").unwrap());
        assert!(eval_when("\"heads\" != tails").unwrap());
        assert!(eval_when("'ip-10-0-1-2' =~ '^ip-'").unwrap());
        assert!(eval_when("abc !~ 'z'").unwrap());
        let err = eval_when("a-b == a-b").unwrap_err();
        assert!(err.contains("minus"), "{err}");
        // govaluate compares strings too (evaluationStage.go), but not a string with a number.
        assert!(eval_when("a < b").unwrap());
        assert!(eval_when("'v1.30' >= 'v1.29'").unwrap());
        assert!(!eval_when("'b' <= 'a'").unwrap());
        assert!(
            eval_when("a < 2")
                .unwrap_err()
                .contains("two numbers or two strings")
        );
        // After substitution: quoted text with spaces compares whole; JSON is not an expression.
        assert!(eval_when("'hello world' == 'hello world'").unwrap());
        assert!(eval_when("hello world == x").is_err());
        assert!(eval_when(r#"{"a":1} == x"#).is_err());
        assert!(eval_when("'it's' == x").is_err());
        assert!(eval_when("YES").unwrap_err().contains("not a boolean"));
        assert!(eval_when("(1 == 1").unwrap_err().contains("')'"));
    }

    #[test]
    fn expr_handles_retry_and_output_expressions() {
        let three = [("lastRetry.exitCode", "3")];
        assert_eq!(
            expr("asInt(lastRetry.exitCode) == 3", &three),
            Ok(Val::Bool(true))
        );
        assert_eq!(
            expr(
                "asInt(lastRetry.exitCode) == 3",
                &[("lastRetry.exitCode", "1")]
            ),
            Ok(Val::Bool(false))
        );
        assert_eq!(
            expr(
                "steps.green.status == 'Succeeded' ? 'GO' : 'NO-GO'",
                &[("steps.green.status", "Failed")]
            ),
            Ok(Val::Str("NO-GO".into()))
        );
        assert_eq!(
            expr(
                "lastRetry.status == \"Error\" or not (asFloat(lastRetry.duration) < 10)",
                &[
                    ("lastRetry.status", "Failed"),
                    ("lastRetry.duration", "12.5")
                ]
            ),
            Ok(Val::Bool(true))
        );
        assert!(
            parse("sprig.trim(x)", Lang::Expr)
                .unwrap_err()
                .contains("sprig.trim")
        );
        assert!(
            expr("nope == 1", &[])
                .unwrap_err()
                .contains("unknown variable nope")
        );
        assert_eq!(
            unwrap_expression("{{= asInt(lastRetry.exitCode) == 3 }}"),
            "asInt(lastRetry.exitCode) == 3"
        );
    }
}
