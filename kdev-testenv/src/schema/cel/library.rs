//! The CEL environment of rules: the `cel` crate's standard library and its strings, lists, math
//! and encoders extensions, plus the Kubernetes library functions that crate lacks (list
//! functions, `sets`, regex `find`/`findAll`) and `cel.bind`.

use std::sync::Arc;

use cel::common::ast::{ComprehensionExpr, Expr, IdedExpr, ListExpr, LiteralValue};
use cel::common::types::{DYN_TYPE, INT_TYPE, LIST_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::parser::{Macro, MacroExprHelper, ParseError};
use cel::{Env, ExecutionError, Value as CelValue, extensions};

/// Every function, macro and operator a rule may use, with its signatures, for the docs and the
/// compile-time check (member functions are written `<type>.f()`).
pub(crate) const AVAILABLE: &[(&str, &str)] = &[
    ("has", "macro `has(self.f)`: whether a field is set"),
    ("all", "macro `list.all(x, p)`, `map.all(k, p)`"),
    ("exists", "macro `list.exists(x, p)`, `map.exists(k, p)`"),
    ("exists_one", "macro `list.exists_one(x, p)`"),
    ("map", "macro `list.map(x, e)`, `list.map(x, p, e)`"),
    ("filter", "macro `list.filter(x, p)`"),
    ("size", "`size(x)`, `x.size()` of strings, bytes, lists, maps"),
    (
        "matches",
        "`string.matches(re)`, `matches(s, re)` (RE2 syntax via the `regex` crate)",
    ),
    ("startsWith", "`string.startsWith(s)`"),
    ("endsWith", "`string.endsWith(s)`"),
    ("contains", "`string.contains(s)`"),
    ("int", "`int(x)` of int, uint, double, string, timestamp"),
    ("uint", "`uint(x)`"),
    ("double", "`double(x)`"),
    ("string", "`string(x)`"),
    ("bool", "`bool(x)`"),
    ("bytes", "`bytes(s)`"),
    ("dyn", "`dyn(x)`"),
    ("type", "`type(x)`"),
    ("duration", "`duration(s)`"),
    ("timestamp", "`timestamp(s)`"),
    (
        "getSeconds",
        "duration and timestamp accessors (`getHours`, `getMinutes`, `getMilliseconds`, ...)",
    ),
    ("getMinutes", "see `getSeconds`"),
    ("getHours", "see `getSeconds`"),
    ("getMilliseconds", "see `getSeconds`"),
    ("getFullYear", "timestamp accessor, optional time zone"),
    ("getMonth", "timestamp accessor"),
    ("getDate", "timestamp accessor"),
    ("getDayOfMonth", "timestamp accessor"),
    ("getDayOfWeek", "timestamp accessor"),
    ("getDayOfYear", "timestamp accessor"),
    ("isSorted", "Kubernetes lists: `list.isSorted()`"),
    (
        "sum",
        "Kubernetes lists: `list.sum()` of ints, uints, doubles or durations",
    ),
    ("min", "Kubernetes lists: `list.min()`"),
    ("max", "Kubernetes lists: `list.max()`"),
    (
        "indexOf",
        "Kubernetes lists `list.indexOf(x)`; strings `string.indexOf(s[, offset])`",
    ),
    (
        "lastIndexOf",
        "Kubernetes lists `list.lastIndexOf(x)`; strings `string.lastIndexOf(s[, offset])`",
    ),
    ("find", "Kubernetes regex: `string.find(re)`, first match or `\"\"`"),
    ("findAll", "Kubernetes regex: `string.findAll(re[, n])`"),
    ("sets.contains", "Kubernetes sets: `sets.contains(list, sublist)`"),
    ("sets.equivalent", "Kubernetes sets: `sets.equivalent(a, b)`"),
    ("sets.intersects", "Kubernetes sets: `sets.intersects(a, b)`"),
    ("charAt", "strings: `string.charAt(i)`"),
    ("lowerAscii", "strings: `string.lowerAscii()`"),
    ("upperAscii", "strings: `string.upperAscii()`"),
    ("trim", "strings: `string.trim()`"),
    ("split", "strings: `string.split(sep[, n])`"),
    ("join", "strings: `list.join([sep])`"),
    ("replace", "strings: `string.replace(a, b[, n])`"),
    ("substring", "strings: `string.substring(start[, end])`"),
    ("reverse", "strings `string.reverse()`, lists `list.reverse()`"),
    ("format", "strings: `string.format(list)`"),
    ("strings.quote", "strings: `strings.quote(s)`"),
    ("slice", "lists: `list.slice(a, b)`"),
    ("flatten", "lists: `list.flatten([depth])`"),
    ("distinct", "lists: `list.distinct()`"),
    ("sort", "lists: `list.sort()`"),
    ("sortBy", "lists: macro `list.sortBy(x, key)`"),
    ("lists.range", "lists: `lists.range(n)`"),
    ("math.greatest", "math: `math.greatest(...)`, `math.least(...)`"),
    ("math.least", "see `math.greatest`"),
    (
        "math.ceil",
        "math: `ceil`, `floor`, `round`, `trunc`, `abs`, `sign`, `sqrt`, `isInf`, `isNaN`, `isFinite`, bit operations",
    ),
    ("base64.encode", "encoders: `base64.encode(bytes)`"),
    ("base64.decode", "encoders: `base64.decode(string)`"),
    ("cel.bind", "macro `cel.bind(name, value, expr)`"),
    (
        "optional.of",
        "optionals: `optional.of(x)`, `optional.none()`, `optional.ofNonZeroValue(x)`, `x.?f`, `x[?k]`",
    ),
    (
        "hasValue",
        "optionals: `opt.hasValue()`, `opt.value()`, `opt.orValue(v)`, `opt.or(other)`",
    ),
];

/// Function names of the math extension that are not listed one by one in [`AVAILABLE`].
const MATH: &[&str] = &[
    "math.floor",
    "math.round",
    "math.trunc",
    "math.abs",
    "math.sign",
    "math.sqrt",
    "math.isInf",
    "math.isNaN",
    "math.isFinite",
    "math.bitAnd",
    "math.bitOr",
    "math.bitXor",
    "math.bitNot",
    "math.bitShiftLeft",
    "math.bitShiftRight",
];

/// Further names of the optional library.
const OPTIONAL: &[&str] = &["optional.none", "optional.ofNonZeroValue", "value", "orValue", "or"];

/// Kubernetes CEL library functions kdev-testenv does not provide: a rule calling one makes its
/// CRD rejected with a message naming the function.
pub(crate) const UNAVAILABLE_KUBERNETES: &[&str] = &[
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    "quantity",
    "isQuantity",
    "asInteger",
    "asApproximateFloat",
    "isInteger",
    "compareTo",
    "isGreaterThan",
    "isLessThan",
    "add",
    "sub",
    "sign",
    "ip",
    "isIP",
    "ip.isCanonical",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "cidr",
    "isCIDR",
    "containsIP",
    "containsCIDR",
    "masked",
    "prefixLength",
    "semver",
    "isSemver",
    "major",
    "minor",
    "patch",
    "authorizer",
    "serviceAccount",
    "resource",
    "group",
    "subresource",
    "namespace",
    "name",
    "check",
    "allowed",
    "reason",
    "errored",
    "error",
    "path",
    "validate",
    "transformMap",
    "transformList",
    "transformMapEntry",
];

/// Namespaces a call may be qualified with (`sets.contains(..)`).
const NAMESPACES: &[&str] = &["sets", "math", "strings", "lists", "base64", "optional", "cel"];

/// Whether `name` (a call; member calls are not qualified) can be evaluated here.
pub(crate) fn is_available(name: &str, _member: bool) -> bool {
    let operator = name.starts_with('_') || name.contains('@') || name.starts_with("!_") || name.starts_with("-_");
    operator
        || AVAILABLE.iter().any(|(n, _)| *n == name)
        || MATH.contains(&name)
        || OPTIONAL.contains(&name)
        || matches!(name, "getDayOfMonth" | "getDate")
}

/// Whether `name` qualifies calls (`sets.contains(..)`).
pub(crate) fn is_namespace(name: &str) -> bool {
    NAMESPACES.contains(&name)
}

/// Identifiers that name types or call namespaces rather than variables.
pub(crate) fn is_type_name(name: &str) -> bool {
    matches!(
        name,
        "int" | "uint" | "double" | "bool" | "string" | "bytes" | "list" | "map" | "null_type" | "type" | "dyn"
    ) || NAMESPACES.contains(&name)
}

/// The environment rules are compiled and evaluated in.
pub(crate) fn env() -> Result<Env, String> {
    let mut env = Env::stdlib();
    let err = |e: cel::DeclarationError| e.to_string();
    env.add_extension(extensions::strings).map_err(err)?;
    env.add_extension(extensions::lists).map_err(err)?;
    env.add_extension(extensions::math).map_err(err)?;
    env.add_extension(extensions::encoders).map_err(err)?;
    env.add_member_overload("isSorted", "list.isSorted()", LIST_TYPE, vec![], is_sorted)
        .map_err(err)?;
    env.add_member_overload("sum", "list.sum()", LIST_TYPE, vec![], sum)
        .map_err(err)?;
    env.add_member_overload("min", "list.min()", LIST_TYPE, vec![], min)
        .map_err(err)?;
    env.add_member_overload("max", "list.max()", LIST_TYPE, vec![], max)
        .map_err(err)?;
    env.add_member_overload("indexOf", "list.indexOf(dyn)", LIST_TYPE, vec![DYN_TYPE], index_of)
        .map_err(err)?;
    env.add_member_overload(
        "lastIndexOf",
        "list.lastIndexOf(dyn)",
        LIST_TYPE,
        vec![DYN_TYPE],
        last_index_of,
    )
    .map_err(err)?;
    env.add_member_overload("find", "string.find(string)", STRING_TYPE, vec![STRING_TYPE], find)
        .map_err(err)?;
    env.add_member_overload(
        "findAll",
        "string.findAll(string)",
        STRING_TYPE,
        vec![STRING_TYPE],
        find_all,
    )
    .map_err(err)?;
    env.add_member_overload(
        "findAll",
        "string.findAll(string,int)",
        STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        find_all_n,
    )
    .map_err(err)?;
    env.add_overload(
        "sets.contains",
        "sets.contains(list,list)",
        vec![LIST_TYPE, LIST_TYPE],
        sets_contains,
    )
    .map_err(err)?;
    env.add_overload(
        "sets.equivalent",
        "sets.equivalent(list,list)",
        vec![LIST_TYPE, LIST_TYPE],
        sets_equivalent,
    )
    .map_err(err)?;
    env.add_overload(
        "sets.intersects",
        "sets.intersects(list,list)",
        vec![LIST_TYPE, LIST_TYPE],
        sets_intersects,
    )
    .map_err(err)?;
    env.add_macro(Macro::receiver("bind", 3, bind_macro)).map_err(err)?;
    Ok(env)
}

/// Expands `cel.bind(name, value, expr)` into a comprehension that binds `name` once.
fn bind_macro(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Result<Option<IdedExpr>, ParseError> {
    if !matches!(target.as_ref().map(|t| &t.expr), Some(Expr::Ident(n)) if n == "cel") {
        return Ok(None);
    }
    let (Some(result), Some(init), Some(var)) = (args.pop(), args.pop(), args.pop()) else {
        return Ok(None);
    };
    let Expr::Ident(name) = var.expr else {
        return Err(helper.new_error(var.id, "cel.bind() variable name must be a simple identifier"));
    };
    let step = helper.next_expr(Expr::Ident(name.clone()));
    let bind = ComprehensionExpr {
        iter_range: helper.next_expr(Expr::List(ListExpr::new(Vec::new()))),
        iter_var: "#unused".to_owned(),
        iter_var2: None,
        accu_var: name,
        accu_init: init,
        loop_cond: helper.next_expr(Expr::Literal(LiteralValue::Boolean(false.into()))),
        loop_step: step,
        result,
    };
    Ok(Some(helper.next_expr(Expr::Comprehension(Box::new(bind)))))
}

type Impl = fn(&[CelValue]) -> Result<CelValue, ExecutionError>;

/// Runs `f` on the arguments as `Value`s and hands its result back to the interpreter.
fn lift<'b, 'v>(args: Vec<CowVal<'b, 'v>>, f: Impl) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let values = args
        .iter()
        .map(|a| CelValue::try_from(a.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let out: Box<dyn Val> = f(&values)?.try_into()?;
    Ok(CowVal::Owned(out))
}

fn list_arg<'a>(values: &'a [CelValue], i: usize, function: &str) -> Result<&'a [CelValue], ExecutionError> {
    match values.get(i) {
        Some(CelValue::List(l)) => Ok(l.as_slice()),
        Some(other) => Err(ExecutionError::no_such_member_overload(
            function,
            vec![other.type_of().to_string()],
        )),
        None => Err(ExecutionError::invalid_argument_count(i + 1, values.len())),
    }
}

fn string_arg<'a>(values: &'a [CelValue], i: usize, function: &str) -> Result<&'a str, ExecutionError> {
    match values.get(i) {
        Some(CelValue::String(s)) => Ok(s.as_str()),
        Some(other) => Err(ExecutionError::no_such_member_overload(
            function,
            vec![other.type_of().to_string()],
        )),
        None => Err(ExecutionError::invalid_argument_count(i + 1, values.len())),
    }
}

/// Orders two comparable values (same kind, or mixed numbers), as CEL's `<` does.
fn compare(a: &CelValue, b: &CelValue) -> Result<std::cmp::Ordering, ExecutionError> {
    use CelValue as V;
    let ordering = match (a, b) {
        (V::Int(x), V::Int(y)) => Some(x.cmp(y)),
        (V::UInt(x), V::UInt(y)) => Some(x.cmp(y)),
        (V::Int(x), V::UInt(y)) => Some(i128::from(*x).cmp(&i128::from(*y))),
        (V::UInt(x), V::Int(y)) => Some(i128::from(*x).cmp(&i128::from(*y))),
        (V::Float(x), V::Float(y)) => x.partial_cmp(y),
        (V::Int(x), V::Float(y)) => (*x as f64).partial_cmp(y),
        (V::Float(x), V::Int(y)) => x.partial_cmp(&(*y as f64)),
        (V::UInt(x), V::Float(y)) => (*x as f64).partial_cmp(y),
        (V::Float(x), V::UInt(y)) => x.partial_cmp(&(*y as f64)),
        (V::String(x), V::String(y)) => Some(x.cmp(y)),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        (V::Bytes(x), V::Bytes(y)) => Some(x.cmp(y)),
        (V::Duration(x), V::Duration(y)) => Some(x.cmp(y)),
        (V::Timestamp(x), V::Timestamp(y)) => Some(x.cmp(y)),
        _ => None,
    };
    ordering
        .ok_or_else(|| ExecutionError::no_such_overload("_<_", vec![a.type_of().to_string(), b.type_of().to_string()]))
}

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    lift(args, |v| {
        let list = list_arg(v, 0, "isSorted")?;
        for pair in list.windows(2) {
            if compare(&pair[0], &pair[1])? == std::cmp::Ordering::Greater {
                return Ok(CelValue::Bool(false));
            }
        }
        Ok(CelValue::Bool(true))
    })
}

fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    lift(args, |v| {
        let list = list_arg(v, 0, "sum")?;
        let overflow = || ExecutionError::Overflow("sum", CelValue::Null, CelValue::Null);
        let Some(first) = list.first() else {
            return Ok(CelValue::Int(0));
        };
        let mut acc = first.clone();
        for x in &list[1..] {
            acc = match (&acc, x) {
                (CelValue::Int(a), CelValue::Int(b)) => CelValue::Int(a.checked_add(*b).ok_or_else(overflow)?),
                (CelValue::UInt(a), CelValue::UInt(b)) => CelValue::UInt(a.checked_add(*b).ok_or_else(overflow)?),
                (CelValue::Float(a), CelValue::Float(b)) => CelValue::Float(a + b),
                (CelValue::Duration(a), CelValue::Duration(b)) => {
                    CelValue::Duration(a.checked_add(b).ok_or_else(overflow)?)
                }
                (a, b) => {
                    return Err(ExecutionError::no_such_overload(
                        "_+_",
                        vec![a.type_of().to_string(), b.type_of().to_string()],
                    ));
                }
            };
        }
        Ok(acc)
    })
}

fn extreme(v: &[CelValue], function: &str, want: std::cmp::Ordering) -> Result<CelValue, ExecutionError> {
    let list = list_arg(v, 0, function)?;
    let Some(mut best) = list.first() else {
        return Err(ExecutionError::function_error(
            function,
            format!("{function} called on empty list"),
        ));
    };
    for x in &list[1..] {
        if compare(x, best)? == want {
            best = x;
        }
    }
    Ok(best.clone())
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    lift(args, |v| extreme(v, "min", std::cmp::Ordering::Less))
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    lift(args, |v| extreme(v, "max", std::cmp::Ordering::Greater))
}

fn position(v: &[CelValue], last: bool) -> Result<CelValue, ExecutionError> {
    let list = list_arg(v, 0, "indexOf")?;
    let needle = v
        .get(1)
        .ok_or_else(|| ExecutionError::invalid_argument_count(2, v.len()))?;
    let found = if last {
        list.iter().rposition(|x| x == needle)
    } else {
        list.iter().position(|x| x == needle)
    };
    Ok(CelValue::Int(found.and_then(|i| i64::try_from(i).ok()).unwrap_or(-1)))
}

fn index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    lift(args, |v| position(v, false))
}

fn last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    lift(args, |v| position(v, true))
}

fn regex_of(pattern: &str, function: &str) -> Result<regex::Regex, ExecutionError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ExecutionError::function_error(function, e))
}

fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    lift(args, |v| {
        let s = string_arg(v, 0, "find")?;
        let re = regex_of(string_arg(v, 1, "find")?, "find")?;
        Ok(CelValue::String(Arc::new(
            re.find(s).map(|m| m.as_str().to_owned()).unwrap_or_default(),
        )))
    })
}

fn find_all_impl(v: &[CelValue], limit: Option<i64>) -> Result<CelValue, ExecutionError> {
    let s = string_arg(v, 0, "findAll")?;
    let re = regex_of(string_arg(v, 1, "findAll")?, "findAll")?;
    let limit = match limit {
        Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    Ok(CelValue::List(Arc::new(
        re.find_iter(s)
            .take(limit)
            .map(|m| CelValue::String(Arc::new(m.as_str().to_owned())))
            .collect(),
    )))
}

fn find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    lift(args, |v| find_all_impl(v, None))
}

fn find_all_n<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    lift(args, |v| {
        let n = match v.get(2) {
            Some(CelValue::Int(n)) => *n,
            _ => -1,
        };
        if n == 0 {
            return Ok(CelValue::List(Arc::new(Vec::new())));
        }
        find_all_impl(v, Some(n))
    })
}

fn contains_all(a: &[CelValue], b: &[CelValue]) -> bool {
    b.iter().all(|x| a.contains(x))
}

fn sets_contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    lift(args, |v| {
        Ok(CelValue::Bool(contains_all(
            list_arg(v, 0, "sets.contains")?,
            list_arg(v, 1, "sets.contains")?,
        )))
    })
}

fn sets_equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    lift(args, |v| {
        let (a, b) = (list_arg(v, 0, "sets.equivalent")?, list_arg(v, 1, "sets.equivalent")?);
        Ok(CelValue::Bool(contains_all(a, b) && contains_all(b, a)))
    })
}

fn sets_intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    lift(args, |v| {
        let (a, b) = (list_arg(v, 0, "sets.intersects")?, list_arg(v, 1, "sets.intersects")?);
        Ok(CelValue::Bool(b.iter().any(|x| a.contains(x))))
    })
}

/// Parses a Go `time.ParseDuration` string (`1h30m`, `-1.5s`, `300ms`), as kube reads
/// `format: duration` strings.
pub(crate) fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_end == 0 {
            return None;
        }
        let number: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            _ => return None,
        };
        total_nanos += number * factor;
        rest = &rest[unit_end..];
    }
    if !total_nanos.is_finite() || total_nanos > i64::MAX as f64 {
        return None;
    }
    let d = chrono::Duration::nanoseconds(total_nanos as i64);
    Some(if negative { -d } else { d })
}
