//! Arrays with `x-kubernetes-list-type: set` or `map` as CEL values: `==` ignores their order and
//! `+` unions or merges them, as the Kubernetes CEL type integration documents
//! (<https://kubernetes.io/docs/reference/using-api/cel/>) and apiserver's `pkg/cel/common/values.go`
//! implements. Atomic lists stay plain [`CelList`]s, whose equality is positional.
//!
//! Only the left operand's list type counts, as in cel-go, where `==` and `+` dispatch on the left
//! value: `self.set == [2, 1]` ignores order, `[2, 1] == self.set` does not; `self.set + [x]` is a
//! set again, `[x] + self.set` a plain list.

use std::sync::Arc;

use cel::ExecutionError;
use cel::common::traits::{Adder, Container, Indexer, Iterable, Sizer, Zeroer};
use cel::common::types::{CelList, CelString, Kind, LIST_TYPE, Type};
use cel::common::value::{Builtin, BuiltinRef, CowVal, Val};

/// What a typed list's `==` and `+` follow.
#[derive(Clone, Debug)]
pub(crate) enum Semantics {
    /// `x-kubernetes-list-type: set`: elements are unique values.
    Set,
    /// `x-kubernetes-list-type: map`: elements are objects identified by these keys (as CEL names
    /// them, escaped).
    Map(Arc<[String]>),
}

/// A list whose schema gives it set or map semantics. To everything but `==` and `+` it is the
/// plain list it wraps: it answers downcasts to [`CelList`], so library functions take it.
#[derive(Clone, Debug)]
pub(crate) struct TypedList<'v> {
    items: CelList<'v>,
    semantics: Semantics,
}

impl<'v> TypedList<'v> {
    /// Wraps `items` with `semantics`.
    pub(crate) fn new(items: Vec<Box<dyn Val + 'v>>, semantics: Semantics) -> Self {
        TypedList {
            items: CelList::from(items),
            semantics,
        }
    }
}

/// The elements of `value` when it is a list (typed or not), `None` otherwise.
fn elements<'b, 'w>(value: &'b (dyn Val + 'w)) -> Option<Vec<&'b (dyn Val + 'w)>> {
    if value.get_type().kind() != Kind::List {
        return None;
    }
    let mut iter = value.as_iterable()?.iter();
    let mut out = Vec::new();
    while let Some(item) = iter.next() {
        out.push(item);
    }
    Some(out)
}

/// The field `name` of an object element, `None` when absent (or not an object).
fn field<'b>(value: &'b dyn Val, name: &str) -> Option<CowVal<'b, 'b>> {
    value.as_indexer()?.get(&CelString::from(name)).ok()
}

/// Whether two map-list elements have the same key: each key field equal, or absent from both.
fn same_key(a: &dyn Val, b: &dyn Val, keys: &[String]) -> bool {
    keys.iter().all(|k| match (field(a, k), field(b, k)) {
        (None, None) => true,
        (Some(x), Some(y)) => x.equals(&*y),
        _ => false,
    })
}

impl TypedList<'_> {
    /// kube's `unstructuredSetList.Equal` and `unstructuredMapList.Equal`: as many elements, and
    /// each of `other`'s found here (for a map list: the element with its key, equal to it).
    fn equals_ignoring_order(&self, other: &dyn Val) -> bool {
        let Some(theirs) = elements(other) else {
            return false;
        };
        if theirs.len() != self.items.len() {
            return false;
        }
        match &self.semantics {
            Semantics::Set => theirs
                .iter()
                .all(|o| self.items.inner().iter().any(|mine| mine.equals(*o))),
            Semantics::Map(keys) => theirs.iter().all(|o| {
                self.items
                    .inner()
                    .iter()
                    .find(|mine| same_key(mine.as_ref(), *o, keys))
                    .is_some_and(|mine| mine.equals(*o))
            }),
        }
    }
}

impl<'v> Val for TypedList<'v> {
    fn get_type(&self) -> &Type {
        &LIST_TYPE
    }

    fn cel_type() -> &'static Type {
        &LIST_TYPE
    }

    fn as_adder<'b, 'w>(&'b self) -> Option<&'b (dyn Adder + 'w)>
    where
        Self: 'w,
    {
        Some(self)
    }

    fn as_container(&self) -> Option<&dyn Container> {
        Some(&self.items)
    }

    fn as_indexer<'b, 'w>(&'b self) -> Option<&'b (dyn Indexer + 'w)>
    where
        Self: 'w,
    {
        Some(&self.items)
    }

    fn into_indexer<'w>(self: Box<Self>) -> Option<Box<dyn Indexer + 'w>>
    where
        Self: 'w,
    {
        Some(Box::new(self.items))
    }

    fn as_iterable<'b, 'w>(&'b self) -> Option<&'b (dyn Iterable + 'w)>
    where
        Self: 'w,
    {
        Some(&self.items)
    }

    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(&self.items)
    }

    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        Some(&self.items)
    }

    fn equals(&self, other: &dyn Val) -> bool {
        self.equals_ignoring_order(other)
    }

    fn clone_as_boxed<'w>(&self) -> Box<dyn Val + 'w>
    where
        Self: 'w,
    {
        Box::new(self.clone())
    }

    // The wrapped list stands in for this one wherever the interpreter or a library function
    // wants a built-in list (conversions, `CelList` parameters).
    fn as_builtin<'b, 'w>(&'b self) -> BuiltinRef<'b, 'w>
    where
        Self: 'w,
    {
        BuiltinRef::List(&self.items)
    }

    fn into_builtin<'w>(self: Box<Self>) -> Option<Builtin<'w>>
    where
        Self: 'w,
    {
        Some(Builtin::List(self.items))
    }
}

impl Adder for TypedList<'_> {
    /// kube's `unstructuredSetList.Add` (a union: this list's elements in place, then those of
    /// `rhs` not yet in it, in their order) and `unstructuredMapList.Add` (a merge: an element of
    /// `rhs` whose key this list has replaces that element in place, the others are appended).
    fn add<'b, 'w>(&'b self, rhs: &(dyn Val + 'w)) -> Result<CowVal<'b, 'w>, ExecutionError>
    where
        Self: 'w,
    {
        let theirs = elements(rhs).ok_or_else(|| {
            ExecutionError::no_such_overload("_+_", vec!["list".to_owned(), rhs.get_type().name().to_owned()])
        })?;
        let mut out: Vec<Box<dyn Val + 'w>> = self.items.inner().iter().map(|i| i.clone_as_boxed()).collect();
        match &self.semantics {
            Semantics::Set => {
                for o in theirs {
                    if !out.iter().any(|x| x.equals(o)) {
                        out.push(o.clone_as_boxed());
                    }
                }
            }
            Semantics::Map(keys) => {
                for o in theirs {
                    let at = self
                        .items
                        .inner()
                        .iter()
                        .position(|mine| same_key(mine.as_ref(), o, keys));
                    match at.and_then(|i| out.get_mut(i)) {
                        Some(slot) => *slot = o.clone_as_boxed(),
                        None => out.push(o.clone_as_boxed()),
                    }
                }
            }
        }
        Ok(CowVal::owned(TypedList::new(out, self.semantics.clone())))
    }
}
