use std::collections::BTreeSet;

use super::{Error, Operator, Requirement, go_quote, validate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    End,
    ClosedPar,
    Comma,
    Not,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::Not,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Go's `Lexer`: `read` yields 0 at the end (and for a NUL byte, which ends a token).
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&c) => {
                self.pos += 1;
                c
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn lex(&mut self) -> (Token, String) {
        let mut c = self.read();
        while is_whitespace(c) {
            c = self.read();
        }
        if c == 0 {
            return (Token::End, String::new());
        }
        self.unread();
        let mut buffer = Vec::new();
        if is_special(c) {
            let mut last = None;
            loop {
                let c = self.read();
                if c == 0 {
                    break;
                }
                if !is_special(c) {
                    self.unread();
                    break;
                }
                buffer.push(c);
                match keyword(&buffer) {
                    Some(token) => last = Some((token, buffer.len())),
                    None if last.is_some() => {
                        self.unread();
                        break;
                    }
                    None => {}
                }
            }
            // Every single special symbol is a token, so `last` is always set.
            let (token, len) = last.unwrap_or((Token::End, 0));
            buffer.truncate(len);
            return (token, String::from_utf8_lossy(&buffer).into_owned());
        }
        loop {
            let c = self.read();
            if c == 0 {
                break;
            }
            if is_special(c) || is_whitespace(c) {
                self.unread();
                break;
            }
            buffer.push(c);
        }
        let token = keyword(&buffer).unwrap_or(Token::Identifier);
        (token, String::from_utf8_lossy(&buffer).into_owned())
    }
}

/// Go's `Parser` over the scanned tokens; `Values` context reads `in`/`notin` as identifiers.
pub(super) struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

type Detail = String;

impl Parser {
    pub(super) fn new(s: &str) -> Self {
        let mut lexer = Lexer {
            s: s.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let end = item.0 == Token::End;
            items.push(item);
            if end {
                break;
            }
        }
        Self { items, position: 0 }
    }

    fn peek_raw(&self) -> (Token, &str) {
        self.items
            .get(self.position)
            .map_or((Token::End, ""), |(t, l)| (*t, l.as_str()))
    }

    fn as_value(token: Token) -> Token {
        if matches!(token, Token::In | Token::NotIn) {
            Token::Identifier
        } else {
            token
        }
    }

    fn lookahead(&self) -> (Token, String) {
        let (token, lit) = self.peek_raw();
        (Self::as_value(token), lit.to_owned())
    }

    fn consume_raw(&mut self) -> (Token, String) {
        let (token, lit) = self.peek_raw();
        let item = (token, lit.to_owned());
        self.position += 1;
        item
    }

    fn consume(&mut self) -> (Token, String) {
        let (token, lit) = self.consume_raw();
        (Self::as_value(token), lit)
    }

    pub(super) fn parse(mut self) -> Result<Vec<Requirement>, Error> {
        let mut requirements = Vec::new();
        loop {
            let (token, lit) = self.lookahead();
            match token {
                Token::Identifier | Token::Not => {
                    let r = self
                        .requirement()
                        .map_err(|detail| Error::ParseRequirement { detail })?;
                    requirements.push(r);
                    let (token, lit) = self.consume();
                    match token {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let (next, lit) = self.lookahead();
                            if !matches!(next, Token::Identifier | Token::Not) {
                                let expected = "identifier after ','";
                                return Err(Error::UnexpectedToken { found: lit, expected });
                            }
                        }
                        _ => {
                            let expected = "',' or 'end of string'";
                            return Err(Error::UnexpectedToken { found: lit, expected });
                        }
                    }
                }
                Token::End => return Ok(requirements),
                _ => {
                    let expected = "!, identifier, or 'end of string'";
                    return Err(Error::UnexpectedToken { found: lit, expected });
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, Detail> {
        let (mut token, mut key) = self.consume();
        let negated = token == Token::Not;
        if negated {
            (token, key) = self.consume();
        }
        if token != Token::Identifier {
            return Err(format!("found '{key}', expected: identifier"));
        }
        let errs = validate::label_key(&key);
        if !errs.is_empty() {
            return Err(format!("<nil>: Invalid value: {}: {}", go_quote(&key), errs.join("; ")));
        }
        let (next, _) = self.lookahead();
        if negated || matches!(next, Token::End | Token::Comma) {
            let operator = if negated {
                Operator::DoesNotExist
            } else {
                Operator::Exists
            };
            return Ok(Requirement {
                key,
                operator,
                values: Vec::new(),
            });
        }
        let operator = self.operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        let values: Vec<String> = values.into_iter().collect();
        validate_values(&key, operator, &values)?;
        Ok(Requirement { key, operator, values })
    }

    fn operator(&mut self) -> Result<Operator, Detail> {
        let (token, lit) = self.consume_raw();
        Ok(match token {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{lit}', expected: in, notin, =, ==, !=, gt, lt")),
        })
    }

    fn set_values(&mut self) -> Result<BTreeSet<String>, Detail> {
        let (token, lit) = self.consume();
        if token != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (token, lit) = self.lookahead();
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.identifiers()?;
                if self.consume().0 != Token::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume();
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifiers(&mut self) -> Result<BTreeSet<String>, Detail> {
        let mut values = BTreeSet::new();
        loop {
            let (token, lit) = self.consume();
            match token {
                Token::Identifier => {
                    values.insert(lit);
                    let (next, lit) = self.lookahead();
                    match next {
                        Token::Comma => {}
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{lit}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    let (next, _) = self.lookahead();
                    if next == Token::ClosedPar {
                        values.insert(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        values.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<BTreeSet<String>, Detail> {
        let (next, _) = self.lookahead();
        if matches!(next, Token::End | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (token, lit) = self.consume();
        if token == Token::Identifier {
            return Ok(BTreeSet::from([lit]));
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

/// The value checks of Go's `NewRequirement`, aggregated (deduplicated, `[a, b]` when several).
fn validate_values(key: &str, operator: Operator, values: &[String]) -> Result<(), Detail> {
    let mut errs: Vec<String> = Vec::new();
    if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
        for (i, v) in values.iter().enumerate() {
            if v.parse::<i64>().is_err() {
                errs.push(format!(
                    "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                    go_quote(v)
                ));
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        let problems = validate::label_value(v);
        if !problems.is_empty() {
            errs.push(format!(
                "values[{i}][{key}]: Invalid value: {}: {}",
                go_quote(v),
                problems.join("; ")
            ));
        }
    }
    let mut seen = BTreeSet::new();
    errs.retain(|e| seen.insert(e.clone()));
    match errs.as_slice() {
        [] => Ok(()),
        [one] => Err(one.clone()),
        many => Err(format!("[{}]", many.join(", "))),
    }
}
