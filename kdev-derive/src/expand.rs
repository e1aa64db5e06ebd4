//! The code `#[derive(CustomResource)]` emits.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use serde_json::{Map, Value, json};
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, FieldsNamed, LitStr, Result};

use crate::attrs;

/// An English plural of a lowercased kind, as kube-rs and kubebuilder guess it.
fn plural(kind: &str) -> String {
    let s = kind.to_lowercase();
    if ["s", "x", "z", "ch", "sh"].iter().any(|e| s.ends_with(e)) {
        format!("{s}es")
    } else if s.ends_with('y') && !s.ends_with("ay") && !s.ends_with("ey") && !s.ends_with("oy") && !s.ends_with("uy") {
        format!("{}ies", &s[..s.len() - 1])
    } else {
        format!("{s}s")
    }
}

pub(crate) fn custom_resource(input: &DeriveInput) -> Result<TokenStream> {
    let spec_ident = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            spec_ident,
            "derive CustomResource on the struct of the resource's spec",
        ));
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "a custom resource's spec cannot be generic: the CRD has one schema",
        ));
    }
    let mut r = attrs::resource(&input.attrs)?;
    let missing = |what: &str, example: &str, why: &str| {
        syn::Error::new_spanned(
            spec_ident,
            format!("missing `{what} = \"...\"`: {why}, e.g. #[kdev({what} = \"{example}\")] on the spec struct"),
        )
    };
    let group = r.group.clone().ok_or_else(|| {
        missing(
            "group",
            "example.com",
            "every custom resource belongs to an API group, a DNS name you own",
        )
    })?;
    let version = r
        .version
        .clone()
        .ok_or_else(|| missing("version", "v1", "every custom resource is served in a version"))?;
    let kind = match (&r.kind, spec_ident.to_string().strip_suffix("Spec")) {
        (Some(kind), _) => kind.clone(),
        (None, Some(kind)) if !kind.is_empty() => kind.to_owned(),
        _ => {
            return Err(missing(
                "kind",
                "MyApp",
                "the kind is the spec struct's name without `Spec`, or says so",
            ));
        }
    };
    // kube-apiserver: a kind whose lowercase form is a DNS-1035 label (`Web-App` is one).
    let lower = kind.to_lowercase();
    let dns1035 = lower.len() <= 63
        && lower.starts_with(|c: char| c.is_ascii_lowercase())
        && !lower.ends_with('-')
        && lower
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !dns1035 {
        return Err(syn::Error::new_spanned(
            spec_ident,
            format!(
                "the kind {kind:?} is not one Kubernetes accepts: lowercased, it must be a DNS-1035 label \
                 (letters, digits and `-`, starting with a letter, at most 63 characters)"
            ),
        ));
    }
    let plural = r.plural.clone().unwrap_or_else(|| plural(&kind));
    let singular = r.singular.clone().unwrap_or_else(|| kind.to_lowercase());
    let krate = r.krate.clone().unwrap_or_else(|| syn::parse_quote!(::kdev::crd));

    // Field-level attributes → schema overrides keyed by the field's name on the wire.
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            spec_ident,
            "a spec struct needs named fields: its schema is an object",
        ));
    };
    let schemas = field_schemas(fields, &input.attrs, &krate)?;
    attrs::resolve_one_of(&mut r.patch, spec_ident.span(), |f| schemas.wire(f))?;
    let mut spec_patch = r.patch.clone();
    if !schemas.require.is_empty() {
        spec_patch.insert("x-kdev-require".into(), json!(schemas.require));
    }
    if !schemas.optional.is_empty() {
        spec_patch.insert("x-kdev-optional".into(), json!(schemas.optional));
    }
    let mut patches = schemas.patches;
    if !spec_patch.is_empty() {
        patches.insert(String::new(), Value::Object(spec_patch));
    }
    let checks = schemas.checks;

    let mut names = json!({ "kind": kind, "listKind": format!("{kind}List"), "plural": plural, "singular": singular });
    if !r.shortnames.is_empty() {
        names["shortNames"] = json!(r.shortnames);
    }
    if !r.categories.is_empty() {
        names["categories"] = json!(r.categories);
    }
    let mut ver = json!({ "name": version, "served": r.served, "storage": true });
    if let Some(warning) = &r.deprecated {
        ver["deprecated"] = json!(true);
        if let Some(w) = warning {
            ver["deprecationWarning"] = json!(w);
        }
    }
    let mut subresources = Map::new();
    if r.status.is_some() {
        subresources.insert("status".into(), json!({}));
    }
    if let Some(scale) = &r.scale {
        if r.status.is_none() {
            return Err(syn::Error::new_spanned(
                spec_ident,
                "the scale subresource reads its replica count from the status: add `status = \"...\"` \
                 (without it the CRD has no status, and every status write would be pruned)",
            ));
        }
        subresources.insert("scale".into(), scale.clone());
    }
    if !subresources.is_empty() {
        ver["subresources"] = Value::Object(subresources);
    }
    if !r.printcolumns.is_empty() {
        ver["additionalPrinterColumns"] = json!(r.printcolumns);
    }
    if !r.selectable_fields.is_empty() {
        ver["selectableFields"] = Value::Array(r.selectable_fields.iter().map(|p| json!({ "jsonPath": p })).collect());
    }
    let crd_name = format!("{plural}.{group}");
    let mut metadata = json!({ "name": crd_name });
    let mut annotations = r.annotations.clone();
    if r.storage.is_some() {
        annotations.insert("crd.kdev.dev/storage-version".into(), json!(version));
    }
    if !annotations.is_empty() {
        metadata["annotations"] = Value::Object(annotations);
    }
    if !r.labels.is_empty() {
        metadata["labels"] = Value::Object(r.labels.clone());
    }
    let skeleton = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": group,
            "names": names,
            "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
            "versions": [ver],
        }
    });
    let skeleton = LitStr::new(&skeleton.to_string(), spec_ident.span());
    let patches = LitStr::new(&Value::Object(patches).to_string(), spec_ident.span());

    let p = quote!(#krate::__private);
    let serde_crate = LitStr::new(
        &format!("{}::serde", quote!(#p).to_string().replace(' ', "")),
        spec_ident.span(),
    );
    let vis = &input.vis;
    let ident = match &r.struct_name {
        Some(ident) => ident.clone(),
        None => syn::parse_str::<syn::Ident>(&kind).map_err(|_| {
            syn::Error::new_spanned(
                spec_ident,
                format!(
                    "the kind {kind:?} is not a Rust identifier, so it cannot name the generated struct: \
                     name it with `struct = \"...\"`"
                ),
            )
        })?,
    };
    let hub = if r.hub {
        quote!(impl #krate::conversion::Hub for #ident {})
    } else {
        quote!()
    };
    // Two `storage` markers on one kind in one module: the same item name twice, which the
    // compiler reports with both places (merge_versions reports it across modules at run time).
    let storage_check = match r.storage {
        Some(span) => {
            let marker = format_ident!(
                "__kdev__only_one_version_of_{}_{}_may_be_the_storage_version",
                kind.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
                group.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
                span = span
            );
            quote_spanned! {span=>
                #[doc(hidden)]
                #[allow(non_camel_case_types, dead_code)]
                struct #marker;
            }
        }
        None => quote!(),
    };
    let api_version = if group.is_empty() {
        version.clone()
    } else {
        format!("{group}/{version}")
    };
    let scope = if r.namespaced {
        quote!(#p::k8s_openapi::NamespaceResourceScope)
    } else {
        quote!(#p::k8s_openapi::ClusterResourceScope)
    };
    let shortnames = &r.shortnames;
    let doc = format!(
        "The `{kind}` custom resource (`{api_version}`, {}), generated by `#[derive(CustomResource)]` on [`{spec_ident}`].",
        if r.namespaced { "namespaced" } else { "cluster-scoped" }
    );
    let meta = quote!(#p::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta);
    let crd_type =
        quote!(#p::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition);

    let (status_field, status_init, status_ser, status_wire, status_move, status_schema, has_status) = match &r.status {
        Some(status) => (
            quote! {
                /// What the controller observed; written through the status subresource.
                pub status: ::core::option::Option<#status>,
            },
            quote!(status: ::core::option::Option::None,),
            quote! {
                if let ::core::option::Option::Some(status) = &self.status {
                    #p::serde::ser::SerializeStruct::serialize_field(&mut state, "status", status)?;
                }
            },
            quote! {
                #[serde(default)]
                status: ::core::option::Option<#status>,
            },
            quote!(status: wire.status,),
            quote!(::core::option::Option::Some(#p::schema_for::<#status>())),
            quote! {
                impl #p::kube_core::object::HasStatus for #ident {
                    type Status = #status;
                    fn status(&self) -> ::core::option::Option<&#status> {
                        self.status.as_ref()
                    }
                    fn status_mut(&mut self) -> &mut ::core::option::Option<#status> {
                        &mut self.status
                    }
                }
            },
        ),
        None => (
            quote!(),
            quote!(),
            quote!(),
            quote!(),
            quote!(),
            quote!(::core::option::Option::None),
            quote!(),
        ),
    };
    let field_count = if r.status.is_some() {
        quote!(4 + usize::from(self.status.is_some()))
    } else {
        quote!(4)
    };

    Ok(quote! {
        #checks
        #storage_check
        #hub

        #p::inventory::submit! {
            #p::Registered { crd: #ident::try_crd }
        }

        #[doc = #doc]
        #[derive(Clone, Debug)]
        #vis struct #ident {
            /// Standard object metadata: name, namespace, labels, annotations, ...
            pub metadata: #meta,
            /// What the user asks for.
            pub spec: #spec_ident,
            #status_field
        }

        impl #ident {
            /// A new object named `name` with `spec` (and no status).
            #vis fn new(name: &str, spec: #spec_ident) -> Self {
                Self {
                    metadata: #meta {
                        name: ::core::option::Option::Some(::std::string::ToString::to_string(name)),
                        ..::core::default::Default::default()
                    },
                    spec,
                    #status_init
                }
            }

            /// The apiextensions.k8s.io/v1 CustomResourceDefinition of this resource.
            ///
            /// # Errors
            ///
            /// When a field attribute names a field missing from the spec's schema, or the
            /// assembled CRD does not parse (a schemars attribute produced an invalid keyword),
            /// or the API server would refuse it: an explicit default that breaks its field's
            /// validations (`InvalidDefault`), a list that breaks the rules of its list type
            /// (`InvalidListType`: a `map` list's key that is not a required or defaulted
            /// scalar field of the items, a `set` of objects that are not atomic).
            #vis fn try_crd() -> ::core::result::Result<#crd_type, #krate::Error> {
                #p::crd(
                    #kind,
                    #skeleton,
                    #patches,
                    #p::schema_for::<#spec_ident>(),
                    #status_schema,
                )
            }

            /// The apiextensions.k8s.io/v1 CustomResourceDefinition of this resource.
            ///
            /// # Panics
            ///
            /// When [`try_crd`](Self::try_crd) fails: a fault in the type's own schema
            /// attributes, the same on every call, so the first test that calls it finds it.
            #vis fn crd() -> #crd_type {
                match Self::try_crd() {
                    ::core::result::Result::Ok(crd) => crd,
                    ::core::result::Result::Err(e) => panic!("{}", e),
                }
            }
        }

        impl #p::kube_core::Resource for #ident {
            type DynamicType = ();
            type Scope = #scope;

            fn kind(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed(#kind)
            }
            fn group(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed(#group)
            }
            fn version(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed(#version)
            }
            fn api_version(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed(#api_version)
            }
            fn plural(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed(#plural)
            }
            fn meta(&self) -> &#meta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut #meta {
                &mut self.metadata
            }
        }

        impl #p::kube_core::object::HasSpec for #ident {
            type Spec = #spec_ident;
            fn spec(&self) -> &#spec_ident {
                &self.spec
            }
            fn spec_mut(&mut self) -> &mut #spec_ident {
                &mut self.spec
            }
        }

        #has_status

        impl #p::kube_core::crd::v1::CustomResourceExt for #ident {
            fn crd() -> #crd_type {
                #ident::crd()
            }
            fn crd_name() -> &'static str {
                #crd_name
            }
            fn api_resource() -> #p::kube_core::discovery::ApiResource {
                #p::kube_core::discovery::ApiResource::erase::<Self>(&())
            }
            fn shortnames() -> &'static [&'static str] {
                &[#(#shortnames),*]
            }
        }

        impl #p::serde::Serialize for #ident {
            fn serialize<S: #p::serde::Serializer>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error> {
                let mut state = #p::serde::Serializer::serialize_struct(serializer, #kind, #field_count)?;
                #p::serde::ser::SerializeStruct::serialize_field(&mut state, "apiVersion", #api_version)?;
                #p::serde::ser::SerializeStruct::serialize_field(&mut state, "kind", #kind)?;
                #p::serde::ser::SerializeStruct::serialize_field(&mut state, "metadata", &self.metadata)?;
                #p::serde::ser::SerializeStruct::serialize_field(&mut state, "spec", &self.spec)?;
                #status_ser
                #p::serde::ser::SerializeStruct::end(state)
            }
        }

        impl<'de> #p::serde::Deserialize<'de> for #ident {
            fn deserialize<D: #p::serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                #[derive(#p::serde::Deserialize)]
                #[serde(crate = #serde_crate)]
                struct Wire {
                    #[serde(default)]
                    metadata: #meta,
                    spec: #spec_ident,
                    #status_wire
                }
                let wire = <Wire as #p::serde::Deserialize>::deserialize(deserializer)?;
                ::core::result::Result::Ok(Self {
                    metadata: wire.metadata,
                    spec: wire.spec,
                    #status_move
                })
            }
        }
    })
}

/// What the `#[kdev(...)]` attributes of a struct's fields say.
pub(crate) struct FieldSchemas {
    /// Each field's overrides, by its name on the wire.
    pub patches: Map<String, Value>,
    /// Fields marked `required` / `optional`, by their names on the wire.
    pub require: Vec<String>,
    pub optional: Vec<String>,
    /// The compile-time checks that each validation fits its field's type.
    pub checks: TokenStream,
    /// Rust field name → wire name, and whether the field can be absent, for every field.
    pub names: Vec<(String, String, bool)>,
}

impl FieldSchemas {
    /// A field's name on the wire from its Rust name (or its wire name), and whether it can be
    /// absent.
    pub fn wire(&self, field: &str) -> Option<(String, bool)> {
        self.names
            .iter()
            .find(|(rust, wire, _)| rust == field || wire == field)
            .map(|(_, wire, absent)| (wire.clone(), *absent))
    }
}

/// Reads the `#[kdev(...)]` and serde attributes of `fields` (of a struct with `attrs`).
pub(crate) fn field_schemas(fields: &FieldsNamed, attrs: &[Attribute], krate: &syn::Path) -> Result<FieldSchemas> {
    let rename_all = attrs::serde_rename_all(attrs);
    let mut out = FieldSchemas {
        patches: Map::new(),
        require: Vec::new(),
        optional: Vec::new(),
        checks: TokenStream::new(),
        names: Vec::new(),
    };
    for field in &fields.named {
        let serde = attrs::serde_field(&field.attrs);
        let rust = field.ident.as_ref().map(ToString::to_string).unwrap_or_default();
        let rust = rust.trim_start_matches("r#").to_owned();
        let wire = serde.rename.clone().unwrap_or_else(|| match &rename_all {
            Some(rule) => attrs::rename(&rust, rule),
            None => rust.clone(),
        });
        let f = attrs::field(&field.attrs)?;
        let is_option =
            matches!(&field.ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Option"));
        out.names.push((
            rust,
            wire.clone(),
            (is_option || serde.skip_if) && f.required != Some(true),
        ));
        if f.patch.is_empty() && f.required.is_none() {
            continue;
        }
        if serde.skipped || serde.flattened {
            return Err(syn::Error::new_spanned(
                field,
                "schema attributes on a field serde skips or flattens have no schema to apply to",
            ));
        }
        let ty = &field.ty;
        let mut seen = Vec::new();
        for (needs, _) in &f.needs {
            if seen.contains(needs) {
                continue;
            }
            seen.push(*needs);
            let check = match needs {
                attrs::Needs::String => quote!(string),
                attrs::Needs::Number => quote!(number),
                attrs::Needs::Array => quote!(array),
            };
            out.checks.extend(quote_spanned! {ty.span()=>
                const _: () = #krate::schema::check::#check::<#ty>();
            });
        }
        match f.required {
            Some(true) => out.require.push(wire.clone()),
            Some(false) => out.optional.push(wire.clone()),
            None => {}
        }
        if !f.patch.is_empty() {
            out.patches.insert(wire, Value::Object(f.patch));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{custom_resource, plural};

    #[test]
    fn a_one_of_refuses_a_field_that_is_always_set() {
        let input = syn::parse_quote! {
            #[kdev(group = "example.com", version = "v1", exactly_one_of(git, image))]
            struct BuildSpec {
                git: Option<String>,
                image: String,
            }
        };
        let err = custom_resource(&input).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "`exactly_one_of` names `image`, which is always set: a field of a one-of must be able to be \
                 absent, make it an `Option<T>` (or give it `#[serde(skip_serializing_if = \"...\")]`) and do not \
                 mark it `required`"
            )
        );
        let input = syn::parse_quote! {
            #[kdev(group = "example.com", version = "v1", at_most_one_of(git, image))]
            struct BuildSpec {
                git: Option<String>,
                #[serde(default, skip_serializing_if = "String::is_empty")]
                image: String,
            }
        };
        assert!(custom_resource(&input).is_ok());
        let input = syn::parse_quote! {
            #[kdev(group = "example.com", version = "v1", at_least_one_of(git, tag))]
            struct BuildSpec {
                git: Option<String>,
            }
        };
        let err = custom_resource(&input).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("`at_least_one_of` names `tag`, which is not a field of this struct")
        );
    }

    #[test]
    fn plurals_follow_english_rules() {
        assert_eq!(plural("MyApp"), "myapps");
        assert_eq!(plural("Policy"), "policies");
        assert_eq!(plural("Gateway"), "gateways");
        assert_eq!(plural("Ingress"), "ingresses");
        assert_eq!(plural("Batch"), "batches");
    }
}
