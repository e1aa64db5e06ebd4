//! CEL validation rules (`x-kubernetes-validations`): compiled when a schema is compiled, checked
//! when a CRD is written, evaluated on writes of custom resources, as apiextensions-apiserver's
//! `pkg/apiserver/schema/cel` does (`compilation.go`, `validation.go`).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::common::types::{CelList, CelMap, CelMapKey, CelOptional, CelString};
use cel::common::value::Val;
use cel::objects::{Key, Map as RawMap};
use cel::{Context, Env, ExecutionError, Program, Value as CelValue};
use serde_json::{Map, Value};

use super::cause::{Cause, go_json, go_json_struct, go_value};
use super::{Additional, Node};

mod library;
mod list_type;

use library::UNAVAILABLE_KUBERNETES;
use list_type::{Semantics, TypedList};

/// The runtime cost budget of one object (`celconfig.RuntimeCELCostBudget`), used by the estimate
/// that stops runaway comprehensions.
const RUNTIME_BUDGET: u128 = 10_000_000;

/// Deepest raw JSON (under `x-kubernetes-preserve-unknown-fields`) handed to CEL.
const MAX_RAW_DEPTH: usize = 64;

/// Longest `messageExpression` result kube keeps (`MaxEvaluatedMessageExpressionSizeBytes`).
const MAX_MESSAGE_BYTES: usize = 5 * 1024;

/// CEL keywords kube escapes in property names (`__{keyword}__`).
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The `reason`s a rule may give.
const REASONS: &[&str] = &[
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

static ENV: LazyLock<Result<Arc<Env>, String>> = LazyLock::new(|| library::env().map(Arc::new));

/// One compiled `x-kubernetes-validations` entry.
#[derive(Debug)]
pub(crate) struct Rule {
    rule: String,
    message: String,
    reason: Option<String>,
    /// The relative `fieldPath`, normalized to a field path suffix (`.a.b`, `[key]`).
    field_suffix: String,
    optional_old_self: bool,
    uses_old_self: bool,
    /// Comprehensions nested in the rule, for the runaway estimate.
    loop_depth: u32,
    /// `None` when the rule does not compile (the CRD was rejected for it).
    program: Option<Program>,
    message_program: Option<Program>,
}

/// Deepest bracket nesting the parser is handed: deeper input would overflow its stack.
const MAX_NESTING: usize = 64;

/// The deepest nesting of `(`, `[` and `{` outside string literals.
fn nesting(source: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in source.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' | '[' | '{' => {
                    depth += 1;
                    max = max.max(depth);
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    max
}

/// Stack of the threads that parse and evaluate rules: cel's parser recurses deeply for each
/// level of brackets, far past a 2 MiB worker stack at [`MAX_NESTING`].
const STACK_BYTES: usize = 128 << 20;

/// Runs `f` on a scoped thread with a [`STACK_BYTES`] stack (inline if no thread can be made);
/// `None` if it panicked.
fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
    let mut job = Some(f);
    let spawned = std::thread::scope(|scope| {
        let slot = &mut job;
        std::thread::Builder::new()
            .name("kdev-cel".to_owned())
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, move || slot.take().map(|f| f()))
            .ok()
            .map(|h| h.join().ok().flatten())
    });
    match spawned {
        Some(out) => out,
        None => job.map(|f| f()),
    }
}

/// The schema node a rule is written on; `root` at the resource root.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    node: &'a Node,
    root: bool,
}

impl<'a> Scope<'a> {
    pub(crate) fn new(node: &'a Node, root: bool) -> Self {
        Scope { node, root }
    }
}

/// Why a rule did not compile: the detail kube prints after the rule.
fn compile(source: &str, scope: Scope<'_>, want: Output) -> Result<Program, String> {
    on_big_stack(|| {
        let program = compile_here(source)?;
        check_fields(&program, source, scope)?;
        let got = result_kind(program.expression(), scope);
        match (want, got) {
            (Output::Bool, Some(kind)) if kind != "bool" => {
                Err("compilation failed: cel expression must evaluate to a bool".to_owned())
            }
            (Output::String, Some(kind)) if kind != "string" => {
                Err("compilation failed: messageExpression must evaluate to a string".to_owned())
            }
            _ => Ok(program),
        }
    })
    .unwrap_or_else(|| Err("compilation failed: the expression could not be compiled".to_owned()))
}

/// What an expression must evaluate to: a rule to a bool, a `messageExpression` to a string.
#[derive(Clone, Copy)]
enum Output {
    Bool,
    String,
}

/// The kind `e` evaluates to when it is evident without a full type checker (literals,
/// operators, well-known functions, fields of the schema); `None` when unsure.
fn result_kind(e: &IdedExpr, scope: Scope<'_>) -> Option<&'static str> {
    use cel::common::ast::LiteralValue as L;
    match &e.expr {
        Expr::Literal(l) => Some(match l {
            L::Boolean(_) => "bool",
            L::Bytes(_) => "bytes",
            L::Double(_) => "double",
            L::Int(_) => "int",
            L::Null => "null",
            L::String(_) => "string",
            L::UInt(_) => "uint",
        }),
        Expr::List(_) => Some("list"),
        Expr::Map(_) => Some("map"),
        Expr::Select(sel) if sel.test => Some("bool"),
        Expr::Select(_) | Expr::Ident(_) => match known(e, scope, &mut Vec::new(), &mut None, 0)? {
            Known::Meta => Some("map"),
            Known::Node(Scope { node, root }) => {
                if root || node.int_or_string || node.format.is_some() {
                    return None;
                }
                match node.types.first().map(String::as_str) {
                    Some("boolean") => Some("bool"),
                    Some("integer") => Some("int"),
                    Some("number") => Some("double"),
                    Some("string") => Some("string"),
                    Some("array") => Some("list"),
                    Some("object") => Some("map"),
                    _ => None,
                }
            }
        },
        Expr::Call(call) => match call.func_name.as_str() {
            "_==_"
            | "_!=_"
            | "_<_"
            | "_<=_"
            | "_>_"
            | "_>=_"
            | "_&&_"
            | "_||_"
            | "!_"
            | "@in"
            | "@not_strictly_false"
            | "startsWith"
            | "endsWith"
            | "contains"
            | "matches"
            | "isSorted"
            | "hasValue" => Some("bool"),
            "size" | "indexOf" | "lastIndexOf" => Some("int"),
            "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "charAt" | "format" | "find"
            | "string" => Some("string"),
            "int" => Some("int"),
            "double" => Some("double"),
            "_+_" | "_-_" | "_*_" | "_/_" | "_%_" => {
                let a = call.args.first().and_then(|a| result_kind(a, scope));
                let b = call.args.get(1).and_then(|b| result_kind(b, scope));
                a.filter(|a| Some(*a) == b && matches!(*a, "int" | "uint" | "double" | "string" | "list"))
            }
            "_?_:_" => {
                let a = call.args.get(1).and_then(|a| result_kind(a, scope));
                let b = call.args.get(2).and_then(|b| result_kind(b, scope));
                a.filter(|a| Some(*a) == b)
            }
            _ => None,
        },
        Expr::Comprehension(_) | Expr::Struct(_) | Expr::Unspecified => None,
    }
}

/// cel-go's `ERROR: <input>:line:column: message` with the source line and a caret.
fn located(source: &str, offset: Option<u32>, message: &str) -> String {
    let Some(offset) = offset.map(|o| o as usize).filter(|o| *o <= source.len()) else {
        return format!("compilation failed: ERROR: <input>: {message}");
    };
    let before = source.get(..offset).unwrap_or("");
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count();
    let line = source[line_start..].lines().next().unwrap_or("");
    format!(
        "compilation failed: ERROR: <input>:{line_no}:{}: {message}\n | {line}\n | {}^",
        column + 1,
        ".".repeat(column)
    )
}

/// What a sub-expression is known to be: a schema node, or (`meta`) the root's `metadata`.
#[derive(Clone, Copy)]
enum Known<'a> {
    Node(Scope<'a>),
    Meta,
}

/// Rejects selections of fields the schema does not declare on objects with declared
/// properties, as cel-go's type checker does (`undefined field 'x'`).
fn check_fields(program: &Program, source: &str, scope: Scope<'_>) -> Result<(), String> {
    let mut vars: Vec<(String, Option<Known<'_>>)> = Vec::new();
    let mut problem = None;
    known(program.expression(), scope, &mut vars, &mut problem, 0);
    match problem {
        None => Ok(()),
        Some((id, field)) => Err(located(
            source,
            program.source_info().offset_for(id).map(|(start, _)| start),
            &format!("undefined field '{field}'"),
        )),
    }
}

/// The known type of `e`, recording the first undefined field selected anywhere inside it.
fn known<'a>(
    e: &IdedExpr,
    scope: Scope<'a>,
    vars: &mut Vec<(String, Option<Known<'a>>)>,
    problem: &mut Option<(u64, String)>,
    depth: usize,
) -> Option<Known<'a>> {
    if depth > 4 * MAX_NESTING + 64 {
        return None;
    }
    match &e.expr {
        Expr::Ident(name) => match vars.iter().rev().find(|(v, _)| v == name) {
            Some((_, k)) => *k,
            None if name == "self" || name == "oldSelf" => Some(Known::Node(scope)),
            None => None,
        },
        Expr::Select(sel) => {
            let operand = known(&sel.operand, scope, vars, problem, depth + 1)?;
            let Known::Node(Scope { node, root }) = operand else {
                if !matches!(sel.field.as_str(), "name" | "generateName") && problem.is_none() {
                    *problem = Some((e.id, sel.field.clone()));
                }
                return None;
            };
            let meta = root || node.embedded;
            if meta && sel.field == "metadata" {
                return Some(Known::Meta);
            }
            if meta && matches!(sel.field.as_str(), "apiVersion" | "kind") {
                return None;
            }
            if let Some((_, child)) = node
                .properties
                .iter()
                .find(|(k, _)| escape_property(k).as_deref() == Some(sel.field.as_str()))
            {
                return Some(Known::Node(Scope::new(child, false)));
            }
            match &node.additional {
                Additional::Schema(child) if node.properties.is_empty() => Some(Known::Node(Scope::new(child, false))),
                _ if !node.properties.is_empty() && node.types.iter().any(|t| t == "object") => {
                    if problem.is_none() {
                        *problem = Some((e.id, sel.field.clone()));
                    }
                    None
                }
                _ => None,
            }
        }
        Expr::Comprehension(c) => {
            let range = known(&c.iter_range, scope, vars, problem, depth + 1);
            let item = match range {
                Some(Known::Node(Scope { node, .. })) if node.types.iter().any(|t| t == "array") => {
                    node.items.as_deref().map(|n| Known::Node(Scope::new(n, false)))
                }
                _ => None,
            };
            known(&c.accu_init, scope, vars, problem, depth + 1);
            let before = vars.len();
            vars.push((c.iter_var.clone(), item));
            if let Some(v2) = &c.iter_var2 {
                vars.push((v2.clone(), None));
            }
            vars.push((c.accu_var.clone(), None));
            for part in [&c.loop_cond, &c.loop_step, &c.result] {
                known(part, scope, vars, problem, depth + 1);
            }
            vars.truncate(before);
            None
        }
        Expr::Call(call) => {
            if let Some(t) = &call.target {
                known(t, scope, vars, problem, depth + 1);
            }
            for a in &call.args {
                known(a, scope, vars, problem, depth + 1);
            }
            None
        }
        Expr::List(l) => {
            for x in &l.elements {
                known(x, scope, vars, problem, depth + 1);
            }
            None
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    known(&me.key, scope, vars, problem, depth + 1);
                    known(&me.value, scope, vars, problem, depth + 1);
                }
            }
            None
        }
        Expr::Struct(st) => {
            for entry in &st.entries {
                if let EntryExpr::StructField(sf) = &entry.expr {
                    known(&sf.value, scope, vars, problem, depth + 1);
                }
            }
            None
        }
        Expr::Literal(_) | Expr::Unspecified => None,
    }
}

fn compile_here(source: &str) -> Result<Program, String> {
    let env = ENV
        .as_ref()
        .map_err(|e| format!("rule compiler initialization error: {e}"))?;
    if nesting(source) > MAX_NESTING {
        return Err(format!(
            "compilation failed: ERROR: <input>: brackets are nested more than {MAX_NESTING} deep, the limit of \
             kdev-testenv's embedded API server"
        ));
    }
    let program = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| env.compile(source)))
        .map_err(|_| "compilation failed: the expression could not be parsed".to_owned())?
        .map_err(|e| format!("compilation failed: {e}"))?;
    check_references(program.expression())?;
    Ok(program)
}

/// Rejects calls of functions the environment lacks and identifiers other than `self` and `oldSelf`,
/// as cel-go's checker does at compile time.
fn check_references(expr: &IdedExpr) -> Result<(), String> {
    let mut problem = None;
    let mut scopes: Vec<String> = Vec::new();
    walk_expr(expr, &mut scopes, &mut |e, scopes| {
        if problem.is_some() {
            return;
        }
        match &e.expr {
            Expr::Call(call) => {
                let qualified = match call.target.as_deref().map(|t| &t.expr) {
                    Some(Expr::Ident(ns)) if library::is_namespace(ns) => format!("{ns}.{}", call.func_name),
                    _ => call.func_name.clone(),
                };
                let name = qualified.as_str();
                if !library::is_available(name, call.target.is_some()) {
                    problem = Some(if UNAVAILABLE_KUBERNETES.contains(&name) {
                        format!(
                            "compilation failed: function '{name}' is part of the Kubernetes CEL library but is not \
                             available in kdev-testenv's embedded API server"
                        )
                    } else {
                        format!(
                            "compilation failed: ERROR: <input>: undeclared reference to '{name}' (in container '')"
                        )
                    });
                }
            }
            Expr::Ident(name) => {
                let known = name == "self"
                    || name == "oldSelf"
                    || scopes.iter().any(|s| s == name)
                    || library::is_type_name(name);
                if !known {
                    problem = Some(format!(
                        "compilation failed: ERROR: <input>: undeclared reference to '{name}' (in container '')"
                    ));
                }
            }
            _ => {}
        }
    });
    problem.map_or(Ok(()), Err)
}

/// Visits every node, keeping the comprehension variables in scope.
fn walk_expr(e: &IdedExpr, scopes: &mut Vec<String>, f: &mut dyn FnMut(&IdedExpr, &[String])) {
    f(e, scopes);
    match &e.expr {
        Expr::Call(call) => {
            if let Some(t) = &call.target {
                walk_expr(t, scopes, f);
            }
            for a in &call.args {
                walk_expr(a, scopes, f);
            }
        }
        Expr::Comprehension(c) => {
            walk_expr(&c.iter_range, scopes, f);
            walk_expr(&c.accu_init, scopes, f);
            let before = scopes.len();
            scopes.push(c.iter_var.clone());
            scopes.extend(c.iter_var2.clone());
            scopes.push(c.accu_var.clone());
            walk_expr(&c.loop_cond, scopes, f);
            walk_expr(&c.loop_step, scopes, f);
            walk_expr(&c.result, scopes, f);
            scopes.truncate(before);
        }
        Expr::List(l) => {
            for x in &l.elements {
                walk_expr(x, scopes, f);
            }
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    walk_expr(&me.key, scopes, f);
                    walk_expr(&me.value, scopes, f);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                if let EntryExpr::StructField(sf) = &entry.expr {
                    walk_expr(&sf.value, scopes, f);
                }
            }
        }
        Expr::Select(s) => walk_expr(&s.operand, scopes, f),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// The deepest nesting of comprehensions (macros such as `all` and `map`) in `e`.
fn loop_depth(e: &IdedExpr) -> u32 {
    let children: Vec<&IdedExpr> = match &e.expr {
        Expr::Call(call) => call.target.iter().map(|t| &**t).chain(call.args.iter()).collect(),
        Expr::Comprehension(c) => {
            let inner = [&c.loop_cond, &c.loop_step, &c.result]
                .into_iter()
                .map(loop_depth)
                .max()
                .unwrap_or(0);
            let outer = loop_depth(&c.iter_range).max(loop_depth(&c.accu_init));
            return outer.max(inner.saturating_add(1));
        }
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Map(m) => m
            .entries
            .iter()
            .filter_map(|en| match &en.expr {
                EntryExpr::MapEntry(me) => Some([&me.key, &me.value]),
                EntryExpr::StructField(_) => None,
            })
            .flatten()
            .collect(),
        Expr::Struct(s) => s
            .entries
            .iter()
            .filter_map(|en| match &en.expr {
                EntryExpr::StructField(sf) => Some(&sf.value),
                EntryExpr::MapEntry(_) => None,
            })
            .collect(),
        Expr::Select(s) => vec![&*s.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    };
    children.into_iter().map(loop_depth).max().unwrap_or(0)
}

fn uses_old_self(program: &Program) -> bool {
    let mut found = false;
    walk_expr(program.expression(), &mut Vec::new(), &mut |e, scopes| {
        if matches!(&e.expr, Expr::Ident(n) if n == "oldSelf" && !scopes.iter().any(|s| s == "oldSelf")) {
            found = true;
        }
    });
    found
}

fn str_of<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Compiles the `x-kubernetes-validations` of one schema node (`node` gives `fieldPath` its meaning).
/// Entries that do not compile are kept without a program: [`check`] rejects their CRD.
pub(crate) fn compile_rules(schema: &Map<String, Value>, node: &Node, root: bool) -> Vec<Arc<Rule>> {
    let scope = Scope::new(node, root);
    let Some(Value::Array(entries)) = schema.get("x-kubernetes-validations") else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(Value::as_object)
        .map(|m| {
            let rule = str_of(m, "rule").to_owned();
            let program = compile(&rule, scope, Output::Bool).ok();
            let message_expression = str_of(m, "messageExpression");
            let message_program = (!message_expression.is_empty())
                .then(|| compile(message_expression, scope, Output::String).ok())
                .flatten();
            let field_suffix = valid_field_path(str_of(m, "fieldPath"), node).unwrap_or_default();
            Arc::new(Rule {
                message: str_of(m, "message").to_owned(),
                reason: m.get("reason").and_then(Value::as_str).map(str::to_owned),
                field_suffix,
                optional_old_self: m.get("optionalOldSelf") == Some(&Value::Bool(true)),
                uses_old_self: program.as_ref().is_some_and(uses_old_self),
                loop_depth: program.as_ref().map_or(0, |p| loop_depth(p.expression())),
                program,
                message_program,
                rule,
            })
        })
        .collect()
}

/// Resolves a rule's `fieldPath` (`.a.b`, `.a['b.c']`) against `node` into a field path suffix, as
/// kube's `ValidFieldPath` does; the error is kube's reason.
fn valid_field_path(path: &str, mut node: &Node) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = path;
    while !rest.is_empty() {
        let (name, after) = if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[', ']']).unwrap_or(r.len());
            if end == 0 {
                return Err("unexpected end of JSON path".to_owned());
            }
            (r[..end].to_owned(), &r[end..])
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(r) = r.strip_prefix('\'') else {
                return Err(format!(
                    "expected single quoted string but got {}",
                    r.split(']').next().unwrap_or(r)
                ));
            };
            let mut end = None;
            let mut escaped = false;
            for (i, c) in r.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let Some(end) = end else {
                return Err("unexpected end of JSON path".to_owned());
            };
            let name = unescape_single_quoted(&r[..end])?;
            let Some(after) = r[end + 1..].strip_prefix(']') else {
                return Err("expected ] but got end of JSON path".to_owned());
            };
            (name, after)
        } else {
            return Err(format!("expected [ or . but got: {rest}"));
        };
        rest = after;
        if !node.properties.is_empty() {
            node = node
                .properties
                .get(&name)
                .ok_or_else(|| "does not refer to a valid field".to_owned())?;
            out.push('.');
            out.push_str(&name);
        } else if let Additional::Schema(child) = &node.additional {
            node = child;
            out.push_str(&format!("[{name}]"));
        } else {
            return Err("does not refer to a valid field".to_owned());
        }
    }
    Ok(out)
}

fn unescape_single_quoted(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('a') => '\u{7}',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('v') => '\u{b}',
            Some('\'') => '\'',
            Some('\\') => '\\',
            Some(other) => return Err(format!("invalid string literal: invalid escape char \\{other}")),
            None => return Err("invalid string literal: invalid escape char \\".to_owned()),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// CRD checks.

/// The causes kube gives for the `x-kubernetes-validations` of a CRD schema at `path`
/// (`spec.validation.openAPIV3Schema` when every version has the same schema): rules that are
/// empty or do not compile, bad reasons, messages and field paths, `oldSelf` where no old value
/// can be correlated. Rule problems come first, compilation problems after them, as kube orders
/// its schema and CEL errors; compilation is only checked where the rules are otherwise fine.
pub(crate) fn check(schema: &Value, path: &str) -> Vec<Cause> {
    let mut schema_errors = Vec::new();
    let mut cel_errors = Vec::new();
    if let Ok(node) = Node::compile(schema, "") {
        let mut checker = Checker {
            schema_errors: &mut schema_errors,
            cel_errors: &mut cel_errors,
        };
        checker.node(schema, &node, path, None, 0);
    }
    schema_errors.extend(cel_errors);
    schema_errors
}

struct Checker<'a> {
    schema_errors: &'a mut Vec<Cause>,
    cel_errors: &'a mut Vec<Cause>,
}

impl Checker<'_> {
    /// `uncorrelatable` is the highest list above `schema` whose items cannot be correlated.
    fn node(&mut self, schema: &Value, node: &Node, path: &str, uncorrelatable: Option<&str>, depth: usize) {
        let Value::Object(s) = schema else { return };
        if depth > 256 {
            return;
        }
        let before = self.schema_errors.len();
        if let (Some(Value::Object(props)), false) = (s.get("properties"), node.properties.is_empty()) {
            for (k, child) in props {
                if let Some(child_node) = node.properties.get(k) {
                    self.node(
                        child,
                        child_node,
                        &format!("{path}.properties[{k}]"),
                        uncorrelatable,
                        depth + 1,
                    );
                }
            }
        }
        if let (Some(items), Some(item_node)) = (s.get("items"), &node.items) {
            let own = path.to_owned();
            let forbid = match (uncorrelatable, node.list_type.as_deref()) {
                (Some(u), _) => Some(u),
                (None, Some("map")) => None,
                (None, _) => Some(own.as_str()),
            };
            self.node(items, item_node, &format!("{path}.items"), forbid, depth + 1);
        }
        if let (Some(additional), Additional::Schema(child)) = (s.get("additionalProperties"), &node.additional) {
            self.node(
                additional,
                child,
                &format!("{path}.additionalProperties"),
                uncorrelatable,
                depth + 1,
            );
        }
        if let Some(Value::Array(branches)) = s.get("allOf") {
            for (i, (branch, branch_node)) in branches.iter().zip(&node.all_of).enumerate() {
                self.node(
                    branch,
                    branch_node,
                    &format!("{path}.allOf[{i}]"),
                    uncorrelatable,
                    depth + 1,
                );
            }
        }
        let Some(Value::Array(entries)) = s.get("x-kubernetes-validations") else {
            return;
        };
        let rules: Vec<(usize, &Map<String, Value>)> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_object().map(|m| (i, m)))
            .collect();
        for (i, m) in &rules {
            self.rule_fields(m, node, &format!("{path}.x-kubernetes-validations[{i}]"));
        }
        if self.schema_errors.len() != before {
            return;
        }
        for (i, m) in &rules {
            self.compile_rule(
                m,
                Scope::new(node, depth == 0),
                &format!("{path}.x-kubernetes-validations[{i}]"),
                uncorrelatable,
            );
        }
    }

    fn rule_fields(&mut self, m: &Map<String, Value>, node: &Node, path: &str) {
        let out = &mut *self.schema_errors;
        let rule = str_of(m, "rule").trim();
        let raw_message = str_of(m, "message");
        let message = raw_message.trim();
        let newlines = |s: &str| s.contains(['\n', '\r']);
        if rule.is_empty() {
            out.push(Cause::required(&format!("{path}.rule"), "rule is not specified"));
        } else if !raw_message.is_empty() && message.is_empty() {
            out.push(Cause::invalid_str(
                &format!("{path}.message"),
                raw_message,
                "message must be non-empty if specified",
            ));
        } else if newlines(message) {
            out.push(Cause::invalid_str(
                &format!("{path}.message"),
                raw_message,
                "message must not contain line breaks",
            ));
        } else if newlines(rule) && message.is_empty() {
            out.push(Cause::required(
                &format!("{path}.message"),
                "message must be specified if rule contains line breaks",
            ));
        }
        let message_expression = str_of(m, "messageExpression");
        if !message_expression.is_empty() && message_expression.trim().is_empty() {
            out.push(Cause::required(
                &format!("{path}.messageExpression"),
                "messageExpression must be non-empty if specified",
            ));
        }
        if let Some(reason) = m.get("reason").and_then(Value::as_str)
            && !REASONS.contains(&reason)
        {
            let supported: Vec<String> = REASONS.iter().map(|r| (*r).to_owned()).collect();
            out.push(Cause::not_supported(
                &format!("{path}.reason"),
                &Value::from(reason),
                &supported,
            ));
        }
        let field_path = str_of(m, "fieldPath");
        if !field_path.is_empty() && field_path.trim().is_empty() {
            out.push(Cause::invalid_str(
                &format!("{path}.fieldPath"),
                field_path,
                "fieldPath must be non-empty if specified",
            ));
        }
        if newlines(field_path) {
            out.push(Cause::invalid_str(
                &format!("{path}.fieldPath"),
                field_path,
                "fieldPath must not contain line breaks",
            ));
        }
        if !field_path.is_empty() && valid_field_path(field_path, node).is_err() {
            out.push(Cause::invalid_str(
                &format!("{path}.fieldPath"),
                field_path,
                "fieldPath must be a valid path",
            ));
        }
    }

    fn compile_rule(&mut self, m: &Map<String, Value>, scope: Scope<'_>, path: &str, uncorrelatable: Option<&str>) {
        let out = &mut *self.cel_errors;
        let rule = str_of(m, "rule");
        let rendered = render_rule(m);
        match compile(rule, scope, Output::Bool) {
            Ok(program) => {
                if uses_old_self(&program) {
                    if let Some(u) = uncorrelatable {
                        out.push(Cause::invalid_str(
                            &format!("{path}.rule"),
                            rule,
                            &format!("oldSelf cannot be used on the uncorrelatable portion of the schema within {u}"),
                        ));
                    }
                } else if let Some(b @ Value::Bool(_)) = m.get("optionalOldSelf") {
                    out.push(Cause::invalid(
                        &format!("{path}.optionalOldSelf"),
                        b,
                        "may not be set if oldSelf is not used in rule",
                    ));
                }
            }
            Err(detail) => out.push(Cause::invalid_raw(&format!("{path}.rule"), &rendered, &detail)),
        }
        let message_expression = str_of(m, "messageExpression");
        if !message_expression.trim().is_empty()
            && let Err(detail) = compile(message_expression, scope, Output::String)
        {
            let detail = detail.replacen("compilation failed", "messageExpression compilation failed", 1);
            out.push(Cause::invalid_raw(
                &format!("{path}.messageExpression"),
                &rendered,
                &detail,
            ));
        }
    }
}

/// The `apiextensions.ValidationRule` kube reports as the bad value of a rule that does not
/// compile, as `json.Marshal` prints it (Kubernetes 1.34 and later). The internal type has no json
/// tags, so its Go field names are the keys, in declaration order, none omitted; `Reason` and
/// `OptionalOldSelf` are pointers (`null` when unset).
fn render_rule(m: &Map<String, Value>) -> String {
    let text = |key: &str| go_json(&Value::from(str_of(m, key)));
    let reason = go_json(&m.get("reason").and_then(Value::as_str).map_or(Value::Null, Value::from));
    let optional = go_json(
        &m.get("optionalOldSelf")
            .and_then(Value::as_bool)
            .map_or(Value::Null, Value::Bool),
    );
    go_json_struct(&[
        ("Rule", text("rule")),
        ("Message", text("message")),
        ("MessageExpression", text("messageExpression")),
        ("Reason", reason),
        ("FieldPath", text("fieldPath")),
        ("OptionalOldSelf", optional),
    ])
}

// ---------------------------------------------------------------------------------------------
// Values.

/// Escapes a property name as kube exposes it to CEL, `None` when CEL cannot reach it.
fn escape_property(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut chars = name.chars();
    let first = chars.next()?;
    let ok_first = first.is_ascii_alphabetic() || matches!(first, '_' | '.' | '-' | '/');
    if !ok_first || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')) {
        return None;
    }
    Some(
        name.replace("__", "__underscores__")
            .replace('.', "__dot__")
            .replace('-', "__dash__")
            .replace('/', "__slash__"),
    )
}

fn primary_type(node: &Node) -> &str {
    if node.int_or_string {
        ""
    } else {
        node.types.first().map_or("", String::as_str)
    }
}

/// `data` as CEL sees it under `node`: declared types first (integers, doubles, formatted strings),
/// objects as maps of their declared (escaped) properties, and arrays with
/// `x-kubernetes-list-type: set` or `map` as [`TypedList`]s, whose `==` ignores order.
fn to_val(node: Option<&Node>, data: &Value, root: bool, depth: usize) -> Result<Box<dyn Val>, ExecutionError> {
    let Some(node) = node else {
        return raw_to_cel(data, depth).try_into();
    };
    match data {
        Value::Null => CelValue::Null.try_into(),
        Value::Bool(b) => CelValue::Bool(*b).try_into(),
        Value::Number(n) => match primary_type(node) {
            "number" => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            _ => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => CelValue::Int(i),
                (None, Some(u)) => CelValue::UInt(u),
                _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
        }
        .try_into(),
        Value::String(s) => string_to_cel(node, s).try_into(),
        Value::Array(items) => {
            let items = items
                .iter()
                .map(|v| to_val(node.items.as_deref(), v, false, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(match node.list_type.as_deref() {
                Some("set") => Box::new(TypedList::new(items, Semantics::Set)),
                Some("map") => {
                    let keys = node
                        .list_map_keys
                        .iter()
                        .map(|k| escape_property(k).unwrap_or_else(|| k.clone()));
                    Box::new(TypedList::new(items, Semantics::Map(keys.collect())))
                }
                _ => Box::new(CelList::from(items)),
            })
        }
        Value::Object(map) => {
            let mut out: HashMap<CelMapKey<'static>, Box<dyn Val>> = HashMap::new();
            if root || node.embedded {
                for k in ["apiVersion", "kind"] {
                    if let Some(Value::String(s)) = map.get(k) {
                        out.insert(CelMapKey::from(k.to_owned()), Box::new(CelString::from(s.clone())));
                    }
                }
                if let Some(Value::Object(meta)) = map.get("metadata") {
                    let mut m: HashMap<CelMapKey<'static>, Box<dyn Val>> = HashMap::new();
                    for k in ["name", "generateName"] {
                        if let Some(Value::String(s)) = meta.get(k) {
                            m.insert(CelMapKey::from(k.to_owned()), Box::new(CelString::from(s.clone())));
                        }
                    }
                    out.insert(CelMapKey::from("metadata".to_owned()), Box::new(CelMap::from(m)));
                }
            }
            match &node.additional {
                Additional::Schema(child) if node.properties.is_empty() => {
                    for (k, v) in map {
                        out.insert(CelMapKey::from(k.clone()), to_val(Some(child), v, false, depth + 1)?);
                    }
                }
                _ if node.properties.is_empty() && !node.preserve_unknown && !root && !node.embedded => {
                    // A free-form map (`type: object` alone): every key.
                    for (k, v) in map {
                        out.insert(CelMapKey::from(k.clone()), raw_to_cel(v, depth + 1).try_into()?);
                    }
                }
                _ => {
                    for (k, child) in &node.properties {
                        if let (Some(v), Some(escaped)) = (map.get(k), escape_property(k)) {
                            out.insert(CelMapKey::from(escaped), to_val(Some(child), v, false, depth + 1)?);
                        }
                    }
                }
            }
            Ok(Box::new(CelMap::from(out)))
        }
    }
}

fn string_to_cel(node: &Node, s: &str) -> CelValue {
    use base64::Engine as _;
    match node.format.as_deref() {
        Some("byte") => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|b| CelValue::Bytes(Arc::new(b)))
            .unwrap_or_else(|_| CelValue::String(Arc::new(s.to_owned()))),
        Some("date-time" | "datetime") => chrono::DateTime::parse_from_rfc3339(s)
            .map(CelValue::Timestamp)
            .unwrap_or_else(|_| CelValue::String(Arc::new(s.to_owned()))),
        Some("date") => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|dt| CelValue::Timestamp(dt.and_utc().fixed_offset()))
            .unwrap_or_else(|| CelValue::String(Arc::new(s.to_owned()))),
        Some("duration") => library::parse_duration(s)
            .map(CelValue::Duration)
            .unwrap_or_else(|| CelValue::String(Arc::new(s.to_owned()))),
        _ => CelValue::String(Arc::new(s.to_owned())),
    }
}

fn raw_to_cel(data: &Value, depth: usize) -> CelValue {
    if depth > MAX_RAW_DEPTH {
        return CelValue::Null;
    }
    match data {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => CelValue::Int(i),
            (None, Some(u)) => CelValue::UInt(u),
            _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(|v| raw_to_cel(v, depth + 1)).collect())),
        Value::Object(map) => CelValue::Map(RawMap {
            map: Arc::new(
                map.iter()
                    .map(|(k, v)| (Key::from(k.as_str()), raw_to_cel(v, depth + 1)))
                    .collect(),
            ),
        }),
    }
}

/// How many JSON values `data` holds, capped at `cap`.
fn weight(data: &Value, cap: u128) -> u128 {
    let mut total: u128 = 1;
    let mut stack = vec![data];
    while let Some(v) = stack.pop() {
        if total >= cap {
            return cap;
        }
        match v {
            Value::Array(items) => {
                total += items.len() as u128;
                stack.extend(items);
            }
            Value::Object(map) => {
                total += map.len() as u128;
                stack.extend(map.values());
            }
            Value::String(s) => total += (s.len() / 64) as u128,
            _ => {}
        }
    }
    total.min(cap)
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

/// The cause kube adds instead of evaluating rules when schema validation already failed badly.
pub(crate) fn blocking(causes: &[Cause]) -> Option<Cause> {
    let blocks = causes.iter().any(|c| {
        matches!(
            c.reason.as_str(),
            "FieldValueNotSupported"
                | "FieldValueRequired"
                | "FieldValueTooLong"
                | "FieldValueTooMany"
                | "FieldValueTypeInvalid"
        )
    });
    blocks.then(|| {
        Cause::invalid(
            "<nil>",
            &Value::Null,
            "some validation rules were not checked because the object was invalid; correct the existing errors to \
             complete validation",
        )
    })
}

/// Evaluates every rule of `root` against `new` (and `old` on updates), returning kube's causes.
pub(crate) fn validate(root: &Node, new: &Value, old: Option<&Value>) -> Vec<Cause> {
    if !has_rules(root, 0) {
        return Vec::new();
    }
    on_big_stack(|| validate_here(root, new, old)).unwrap_or_else(|| {
        vec![Cause::invalid(
            "<nil>",
            &Value::Null,
            "some validation rules were not checked because their evaluation failed",
        )]
    })
}

pub(crate) fn has_rules(node: &Node, depth: usize) -> bool {
    depth < 512
        && (!node.rules.is_empty()
            || node.properties.values().any(|n| has_rules(n, depth + 1))
            || node.items.as_deref().is_some_and(|n| has_rules(n, depth + 1))
            || matches!(&node.additional, Additional::Schema(n) if has_rules(n, depth + 1))
            || node.all_of.iter().any(|n| has_rules(n, depth + 1)))
}

fn validate_here(root: &Node, new: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut walker = Walker {
        out: Vec::new(),
        spent: 0,
        exhausted: false,
    };
    walker.node(root, "", new, old, true, 0);
    walker.out
}

struct Walker {
    out: Vec<Cause>,
    /// Estimated cost spent so far on this object.
    spent: u128,
    exhausted: bool,
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn field_of(path: &str) -> String {
    if path.is_empty() {
        "<nil>".to_owned()
    } else {
        path.to_owned()
    }
}

/// The old item a `x-kubernetes-list-type: map` item corresponds to (same key values).
fn correlate<'a>(node: &Node, item: &Value, old: Option<&'a Value>) -> Option<&'a Value> {
    if node.list_type.as_deref() != Some("map") || node.list_map_keys.is_empty() {
        return None;
    }
    old?.as_array()?.iter().find(|o| {
        node.list_map_keys
            .iter()
            .all(|k| o.get(k) == item.get(k) && (o.get(k).is_some() || item.get(k).is_none()))
    })
}

impl Walker {
    fn node(&mut self, node: &Node, path: &str, new: &Value, old: Option<&Value>, root: bool, depth: usize) {
        if new.is_null() || self.exhausted || depth > 512 {
            return;
        }
        let old = old.filter(|o| !o.is_null());
        if !node.rules.is_empty() {
            self.rules(node, path, new, old, root);
        }
        for branch in &node.all_of {
            self.node(branch, path, new, old, root, depth + 1);
        }
        match new {
            Value::Array(items) => {
                if let Some(item_node) = &node.items {
                    for (i, item) in items.iter().enumerate() {
                        let old_item = correlate(node, item, old);
                        self.node(item_node, &format!("{path}[{i}]"), item, old_item, false, depth + 1);
                    }
                }
            }
            Value::Object(map) => {
                if let Additional::Schema(child) = &node.additional {
                    for (k, v) in map {
                        if node.properties.contains_key(k) {
                            continue;
                        }
                        let old_v = old.and_then(|o| o.get(k));
                        self.node(child, &format!("{path}[{k}]"), v, old_v, false, depth + 1);
                    }
                }
                for (k, child) in &node.properties {
                    if let Some(v) = map.get(k) {
                        let old_v = old.and_then(|o| o.get(k));
                        self.node(child, &child_path(path, k), v, old_v, false, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }

    fn rules(&mut self, node: &Node, path: &str, new: &Value, old: Option<&Value>, root: bool) {
        let Ok(env) = ENV.as_ref() else {
            return;
        };
        let ty = if root { "object" } else { primary_type(node) };
        let Ok(self_val) = to_val(Some(node), new, root, 0) else {
            return;
        };
        let old_val = old.and_then(|o| to_val(Some(node), o, root, 0).ok());
        let unchanged = old == Some(new);
        let size = weight(new, RUNTIME_BUDGET);
        for rule in &node.rules {
            let Some(program) = &rule.program else {
                continue;
            };
            if rule.uses_old_self && old_val.is_none() && !rule.optional_old_self {
                continue;
            }
            // Without comprehensions a rule reads a bounded part of `self` (equality and string
            // functions aside, which stay far below the budget at any request size).
            let estimate = if rule.loop_depth == 0 {
                1
            } else {
                size.saturating_pow(rule.loop_depth)
            };
            self.spent = self.spent.saturating_add(estimate);
            if estimate > RUNTIME_BUDGET || self.spent > RUNTIME_BUDGET {
                self.out.push(Cause::invalid_str(
                    &field_of(path),
                    ty,
                    "validation failed due to running out of cost budget, no further validation rules will be run",
                ));
                self.exhausted = true;
                return;
            }
            let mut ctx = Context::with_env(Arc::clone(env));
            ctx.add_variable_as_val("self", self_val.clone());
            let old_binding: Option<Box<dyn Val>> = match (&old_val, rule.optional_old_self) {
                (Some(o), false) => Some(o.clone()),
                (Some(o), true) => Some(Box::new(CelOptional::of(o.clone()))),
                (None, true) => Some(Box::new(CelOptional::none())),
                (None, false) => None,
            };
            if let Some(o) = old_binding {
                ctx.add_variable_as_val("oldSelf", o);
            }
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(&ctx)))
                .unwrap_or_else(|_| Err(ExecutionError::function_error("rule", "evaluation failed")));
            let failed = match result {
                Ok(CelValue::Bool(true)) => false,
                Ok(CelValue::Bool(false)) => true,
                Ok(other) => {
                    let detail = format!(
                        "'no such overload: rule evaluated to {:?}, not bool': call arguments did not match a \
                         supported operator, function or macro signature for rule: {}",
                        other.type_of(),
                        rule.error_string()
                    );
                    self.out.push(Cause::invalid_str(&field_of(path), ty, &detail));
                    continue;
                }
                Err(e) => {
                    self.out
                        .push(Cause::invalid_str(&field_of(path), ty, &runtime_error(&e, rule)));
                    continue;
                }
            };
            if !failed || (unchanged && !rule.uses_old_self) {
                continue;
            }
            // kube evaluates messageExpression with a plain `oldSelf`, also for optionalOldSelf rules.
            let plain;
            let message_ctx = if rule.optional_old_self && rule.message_program.is_some() {
                let mut c = Context::with_env(Arc::clone(env));
                c.add_variable_as_val("self", self_val.clone());
                if let Some(o) = old_val.clone() {
                    c.add_variable_as_val("oldSelf", o);
                }
                plain = c;
                Some(&plain)
            } else {
                Some(&ctx)
            };
            let detail = rule
                .message_program
                .as_ref()
                .zip(message_ctx)
                .and_then(|(p, message_ctx)| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.execute(message_ctx)))
                        .ok()?
                        .ok()
                })
                .and_then(|v| match v {
                    CelValue::String(s) => {
                        let t = s.trim();
                        (!t.is_empty() && t.len() <= MAX_MESSAGE_BYTES && !t.contains('\n')).then(|| t.to_owned())
                    }
                    _ => None,
                })
                .unwrap_or_else(|| rule.message_or_default());
            let field = field_of(&format!("{path}{}", rule.field_suffix))
                .trim_start_matches('.')
                .to_owned();
            let omit = matches!(ty, "object" | "array") || root;
            let rendered = if omit { None } else { Some(go_value(new)) };
            self.out.push(cause_for_reason(
                rule.reason.as_deref(),
                &field,
                rendered.as_deref(),
                &detail,
            ));
        }
    }
}

/// `fieldErrorForReason`: the cause of a failed rule. `value` is the rendered bad value, `None`
/// for objects and arrays (kube omits it).
fn cause_for_reason(reason: Option<&str>, field: &str, value: Option<&str>, detail: &str) -> Cause {
    match reason {
        Some("FieldValueForbidden") => Cause::forbidden(field, detail),
        Some("FieldValueRequired") => Cause::required(field, detail),
        Some("FieldValueDuplicate") => Cause::with_message(
            "FieldValueDuplicate",
            field,
            match value {
                Some(v) => format!("Duplicate value: {v}"),
                None => "Duplicate value".to_owned(),
            },
        ),
        _ => Cause::with_message(
            "FieldValueInvalid",
            field,
            match value {
                Some(v) => format!("Invalid value: {v}: {detail}"),
                None => format!("Invalid value: {detail}"),
            },
        ),
    }
}

impl Rule {
    /// `ruleErrorString`: the trimmed message, else the trimmed rule.
    fn error_string(&self) -> &str {
        if self.message.is_empty() {
            self.rule.trim()
        } else {
            self.message.trim()
        }
    }

    /// `ruleMessageOrDefault`.
    fn message_or_default(&self) -> String {
        if self.message.is_empty() {
            format!("failed rule: {}", self.error_string())
        } else {
            self.message.trim().to_owned()
        }
    }
}

/// The detail of a rule that failed to evaluate, in cel-go's words where they are known.
fn runtime_error(e: &ExecutionError, rule: &Rule) -> String {
    let rule_text = rule.error_string();
    match e {
        ExecutionError::NoSuchOverload(o) => format!(
            "'no such overload: {o}': call arguments did not match a supported operator, function or macro \
             signature for rule: {rule_text}"
        ),
        ExecutionError::NoSuchKey(k) => format!("no such key: {k} evaluating rule: {rule_text}"),
        ExecutionError::IndexOutOfBounds(i) => {
            let index = match i {
                CelValue::Int(n) => n.to_string(),
                CelValue::UInt(n) => n.to_string(),
                other => format!("{other:?}"),
            };
            format!("index out of bounds: {index} evaluating rule: {rule_text}")
        }
        ExecutionError::DivisionByZero(_) => format!("division by zero evaluating rule: {rule_text}"),
        ExecutionError::RemainderByZero(_) => format!("modulus by zero evaluating rule: {rule_text}"),
        ExecutionError::Overflow(..) => format!("integer overflow evaluating rule: {rule_text}"),
        other => format!("{other} evaluating rule: {rule_text}"),
    }
}

#[cfg(test)]
mod tests;
