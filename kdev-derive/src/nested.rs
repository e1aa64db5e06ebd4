//! `#[kdev::schema]`: the field attributes on a type used inside a spec.
//!
//! The derive on the spec can only patch the spec's own fields; a nested type's schema is
//! written by its own `#[derive(JsonSchema)]`. This attribute macro rewrites the type's
//! `#[kdev(...)]` attributes into schemars `extend("x-kdev-patch" = "...")` attributes, so
//! the overrides travel inside the type's schema (through `$ref`s and `Option`s) and
//! `kdev_crd::schema::structural` applies them where the type ends up.

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::{Value, json};
use syn::{Data, DeriveInput, Fields, LitStr, Result};

use crate::{attrs, expand};

pub(crate) fn schema(args: TokenStream, item: TokenStream) -> Result<TokenStream> {
    let mut input: DeriveInput = syn::parse2(item)?;
    let mut krate: Option<syn::Path> = None;
    if !args.is_empty() {
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                krate = Some(meta.value()?.parse::<LitStr>()?.parse()?);
                Ok(())
            } else {
                Err(meta
                    .error("`#[kdev::schema]` takes only `crate = \"path\"`; put schema attributes in #[kdev(...)]"))
            }
        });
        syn::parse::Parser::parse2(parser, args)?;
    }
    // Below the derive, this attribute runs after it: the schema is already made without the
    // overrides, which would vanish silently.
    let derives_json_schema = input.attrs.iter().any(|a| {
        a.path().is_ident("derive")
            && a.parse_args_with(syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated)
                .is_ok_and(|paths| {
                    paths
                        .iter()
                        .any(|p| p.segments.last().is_some_and(|s| s.ident == "JsonSchema"))
                })
    });
    if !derives_json_schema {
        return Err(syn::Error::new(
            input.ident.span(),
            "`#[kdev::schema]` must come above `#[derive(JsonSchema)]` (it feeds the derive the \
             overrides; below it, or without it, they would be lost); write the derive as \
             `JsonSchema` or `schemars::JsonSchema`, not under another name",
        ));
    }
    let (type_krate, mut patch) = attrs::type_schema(&input.attrs)?;
    let krate = type_krate.or(krate).unwrap_or_else(|| syn::parse_quote!(::kdev::crd));
    let mut checks = TokenStream::new();
    match &mut input.data {
        Data::Struct(data) => {
            if let Fields::Named(fields) = &data.fields {
                let schemas = expand::field_schemas(fields, &input.attrs, &krate)?;
                attrs::resolve_one_of(&mut patch, input.ident.span(), |f| schemas.wire(f))?;
                if !schemas.require.is_empty() {
                    patch.insert("x-kdev-require".into(), json!(schemas.require));
                }
                if !schemas.optional.is_empty() {
                    patch.insert("x-kdev-optional".into(), json!(schemas.optional));
                }
                checks = schemas.checks;
            }
            for field in data.fields.iter_mut() {
                let f = attrs::field(&field.attrs)?;
                field.attrs.retain(|a| !a.path().is_ident("kdev"));
                if !f.patch.is_empty() {
                    let text = LitStr::new(&Value::Object(f.patch).to_string(), proc_macro2::Span::call_site());
                    field
                        .attrs
                        .push(syn::parse_quote!(#[schemars(extend("x-kdev-patch" = #text))]));
                }
            }
        }
        Data::Enum(data) => {
            attrs::resolve_one_of(&mut patch, input.ident.span(), |_| None)?;
            for variant in &data.variants {
                for field in &variant.fields {
                    if field.attrs.iter().any(|a| a.path().is_ident("kdev")) {
                        return Err(syn::Error::new_spanned(
                            field,
                            "`#[kdev(...)]` on the fields of an enum's variants is not applied: \
                             give the variant a struct with `#[kdev::schema]` instead",
                        ));
                    }
                }
            }
        }
        Data::Union(_) => {
            return Err(syn::Error::new_spanned(
                &input.ident,
                "`#[kdev::schema]` goes on a struct or an enum",
            ));
        }
    }
    input.attrs.retain(|a| !a.path().is_ident("kdev"));
    if !patch.is_empty() {
        let text = LitStr::new(&Value::Object(patch).to_string(), proc_macro2::Span::call_site());
        input
            .attrs
            .push(syn::parse_quote!(#[schemars(extend("x-kdev-patch" = #text))]));
    }
    Ok(quote! {
        #input
        #checks
    })
}
