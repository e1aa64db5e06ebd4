//! `meta.k8s.io/v1` Table output, what kubectl asks for to print `kubectl get`
//! ([receiving resources as Tables](https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables)).

use serde_json::{Value, json};

use crate::registry::{PrinterColumn, Resource};

/// Computes a built-in type's extra cells of one row.
type Cells = fn(&Value) -> Vec<Value>;

fn col(name: &str, ty: &str, format: &str, priority: i64) -> Value {
    let description = match name {
        "Name" => NAME_DESCRIPTION,
        "Age" => AGE_DESCRIPTION,
        _ => "",
    };
    json!({ "name": name, "type": ty, "format": format, "description": description, "priority": priority })
}

/// ObjectMeta's documentation of `name`, which kube-apiserver's tables give their Name column.
const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although \
    some resources may allow a client to request the generation of an appropriate name automatically. Name is \
    primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: \
    https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// ObjectMeta's documentation of `creationTimestamp`, which kube-apiserver's tables give their
/// Age column.
const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was \
    created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set \
    this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for \
    lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// A Table of `objects` (already in the served version).
pub(crate) fn table(res: &Resource, version: &str, objects: &[Value], rv: &str, next: Option<&str>) -> Value {
    let custom: Option<&Vec<PrinterColumn>> = res.crd.as_ref().and_then(|c| c.get(version)).map(|v| &v.columns);
    let mut defs = vec![col("Name", "string", "name", 0)];
    let rows: Vec<Value>;
    if let Some(cols) = custom.filter(|c| !c.is_empty()) {
        for c in cols {
            // kube-apiserver's CRD table convertor describes an undocumented column by its path.
            let description = if c.description.is_empty() {
                format!(
                    "Custom resource definition column (in JSONPath format): {}",
                    c.json_path
                )
            } else {
                c.description.clone()
            };
            defs.push(json!({ "name": c.name, "type": c.type_, "format": c.format, "description": description, "priority": c.priority }));
        }
        if !cols.iter().any(|c| c.name == "Age") {
            defs.push(col("Age", "date", "", 0));
        }
        rows = objects
            .iter()
            .map(|o| {
                let mut cells = vec![name(o)];
                cells.extend(cols.iter().map(|c| cell(o, c)));
                if !cols.iter().any(|c| c.name == "Age") {
                    cells.push(created(o));
                }
                row(o, cells)
            })
            .collect();
    } else {
        let p = printer(&res.group, &res.plural);
        defs.extend(p.before);
        if p.age {
            defs.push(col("Age", "date", "", 0));
        }
        defs.extend(p.after);
        rows = objects
            .iter()
            .map(|o| {
                let mut cells = vec![name(o)];
                cells.extend((p.cells)(o));
                if p.age {
                    cells.push(created(o));
                }
                cells.extend((p.wide)(o));
                row(o, cells)
            })
            .collect();
    }
    let mut meta = json!({ "resourceVersion": rv });
    if let Some(n) = next {
        meta["continue"] = json!(n);
    }
    json!({ "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs, "rows": rows })
}

/// A built-in type's columns as kube-apiserver's printers (`pkg/printers/internalversion`) give
/// them: those before Age, Age (or the default table's Created At), then the `-o wide` ones
/// (priority 1).
struct Printer {
    before: Vec<Value>,
    cells: Cells,
    age: bool,
    after: Vec<Value>,
    wide: Cells,
}

fn no_cells(_: &Value) -> Vec<Value> {
    Vec::new()
}

/// `<none>` for an empty cell, as kubectl's printers write it.
fn or_none(s: String) -> Value {
    json!(if s.is_empty() { "<none>".to_string() } else { s })
}

fn text_at(o: &Value, p: &str) -> String {
    o.pointer(p).and_then(Value::as_str).unwrap_or("").to_string()
}

fn int_at(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// A map of labels as `labels.FormatLabels` writes it: `a=b,c=d`, `<none>` when empty.
fn label_map(v: Option<&Value>) -> Value {
    let pairs: Vec<String> = v
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    or_none(pairs.join(","))
}

/// A label selector as `metav1.FormatLabelSelector` writes it (match labels, then expressions).
fn selector(v: Option<&Value>) -> Value {
    let Some(sel) = v else { return json!("<none>") };
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for r in sel["matchExpressions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let key = r["key"].as_str().unwrap_or("");
        let values: Vec<&str> = r["values"]
            .as_array()
            .map(|vs| vs.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match r["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({})", values.join(",")),
        });
    }
    or_none(parts.join(","))
}

/// The `-o wide` cells of a Deployment, ReplicaSet or DaemonSet: containers, images, selector.
fn workload_wide(o: &Value) -> Vec<Value> {
    let (containers, images) = containers_and_images(o);
    vec![containers, images, selector(o.pointer("/spec/selector"))]
}

/// The CONTAINERS and IMAGES cells of a pod template.
fn containers_and_images(o: &Value) -> (Value, Value) {
    let cs = o
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().map(|c| c["name"].as_str().unwrap_or("")).collect();
    let images: Vec<&str> = cs.iter().map(|c| c["image"].as_str().unwrap_or("")).collect();
    (json!(names.join(",")), json!(images.join(",")))
}

fn printer(group: &str, plural: &str) -> Printer {
    let plain = |before: Vec<Value>, cells: Cells| Printer {
        before,
        cells,
        age: true,
        after: Vec::new(),
        wide: no_cells,
    };
    let wide = |n: &str| col(n, "string", "", 1);
    match (group, plural) {
        ("", "pods") => Printer {
            before: vec![
                col("Ready", "string", "", 0),
                col("Status", "string", "", 0),
                col("Restarts", "string", "", 0),
            ],
            cells: |o| {
                let statuses = o.pointer("/status/containerStatuses").and_then(Value::as_array);
                let total = o
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let ready = statuses.map_or(0, |s| s.iter().filter(|c| c["ready"] == true).count());
                let restarts: i64 = statuses.map_or(0, |s| s.iter().filter_map(|c| c["restartCount"].as_i64()).sum());
                let status = if o.pointer("/metadata/deletionTimestamp").is_some() {
                    "Terminating".to_string()
                } else {
                    o.pointer("/status/phase")
                        .and_then(Value::as_str)
                        .unwrap_or("Pending")
                        .to_string()
                };
                vec![
                    json!(format!("{ready}/{total}")),
                    json!(status),
                    json!(restarts.to_string()),
                ]
            },
            age: true,
            after: vec![
                wide("IP"),
                wide("Node"),
                wide("Nominated Node"),
                wide("Readiness Gates"),
            ],
            wide: |o| {
                let gates = o
                    .pointer("/spec/readinessGates")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                vec![
                    or_none(text_at(o, "/status/podIP")),
                    or_none(text_at(o, "/spec/nodeName")),
                    or_none(text_at(o, "/status/nominatedNodeName")),
                    if gates == 0 {
                        json!("<none>")
                    } else {
                        let conditions = o.pointer("/status/conditions").and_then(Value::as_array);
                        let ready = o
                            .pointer("/spec/readinessGates")
                            .and_then(Value::as_array)
                            .map_or(0, |gs| {
                                gs.iter()
                                    .filter(|g| {
                                        conditions.is_some_and(|cs| {
                                            cs.iter()
                                                .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
                                        })
                                    })
                                    .count()
                            });
                        json!(format!("{ready}/{gates}"))
                    },
                ]
            },
        },
        ("apps", "deployments") => Printer {
            before: vec![
                col("Ready", "string", "", 0),
                col("Up-to-date", "string", "", 0),
                col("Available", "string", "", 0),
            ],
            cells: |o| {
                vec![
                    json!(format!(
                        "{}/{}",
                        int_at(o, "/status/readyReplicas"),
                        int_at(o, "/spec/replicas")
                    )),
                    json!(int_at(o, "/status/updatedReplicas")),
                    json!(int_at(o, "/status/availableReplicas")),
                ]
            },
            age: true,
            after: vec![wide("Containers"), wide("Images"), wide("Selector")],
            wide: workload_wide,
        },
        ("apps", "replicasets") => Printer {
            before: vec![
                col("Desired", "integer", "", 0),
                col("Current", "integer", "", 0),
                col("Ready", "integer", "", 0),
            ],
            cells: |o| {
                vec![
                    json!(int_at(o, "/spec/replicas")),
                    json!(int_at(o, "/status/replicas")),
                    json!(int_at(o, "/status/readyReplicas")),
                ]
            },
            age: true,
            after: vec![wide("Containers"), wide("Images"), wide("Selector")],
            wide: workload_wide,
        },
        ("apps", "statefulsets") => Printer {
            before: vec![col("Ready", "string", "", 0)],
            cells: |o| {
                vec![json!(format!(
                    "{}/{}",
                    int_at(o, "/status/readyReplicas"),
                    int_at(o, "/spec/replicas")
                ))]
            },
            age: true,
            after: vec![wide("Containers"), wide("Images")],
            wide: |o| {
                let (c, i) = containers_and_images(o);
                vec![c, i]
            },
        },
        ("apps", "daemonsets") => Printer {
            before: vec![
                col("Desired", "integer", "", 0),
                col("Current", "integer", "", 0),
                col("Ready", "integer", "", 0),
                col("Up-to-date", "integer", "", 0),
                col("Available", "integer", "", 0),
                col("Node Selector", "string", "", 0),
            ],
            cells: |o| {
                vec![
                    json!(int_at(o, "/status/desiredNumberScheduled")),
                    json!(int_at(o, "/status/currentNumberScheduled")),
                    json!(int_at(o, "/status/numberReady")),
                    json!(int_at(o, "/status/updatedNumberScheduled")),
                    json!(int_at(o, "/status/numberAvailable")),
                    label_map(o.pointer("/spec/template/spec/nodeSelector")),
                ]
            },
            age: true,
            after: vec![wide("Containers"), wide("Images"), wide("Selector")],
            wide: workload_wide,
        },
        ("batch", "jobs") => Printer {
            before: vec![
                col("Status", "string", "", 0),
                col("Completions", "string", "", 0),
                col("Duration", "string", "", 0),
            ],
            cells: super::batch::job_cells,
            age: true,
            after: vec![wide("Containers"), wide("Images"), wide("Selector")],
            wide: workload_wide,
        },
        ("batch", "cronjobs") => Printer {
            before: vec![
                col("Schedule", "string", "", 0),
                col("Timezone", "string", "", 0),
                col("Suspend", "boolean", "", 0),
                col("Active", "integer", "", 0),
                col("Last Schedule", "string", "", 0),
            ],
            cells: super::batch::cronjob_cells,
            age: true,
            after: vec![wide("Containers"), wide("Images"), wide("Selector")],
            wide: |o| {
                let template = json!({ "spec": o.pointer("/spec/jobTemplate/spec").cloned().unwrap_or(Value::Null) });
                let (containers, images) = containers_and_images(&template);
                vec![
                    containers,
                    images,
                    selector(o.pointer("/spec/jobTemplate/spec/selector")),
                ]
            },
        },
        ("", "namespaces") => plain(vec![col("Status", "string", "", 0)], |o| {
            vec![o.pointer("/status/phase").cloned().unwrap_or(json!(""))]
        }),
        ("", "configmaps") => plain(vec![col("Data", "integer", "", 0)], |o| {
            let count = |k: &str| o.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
            vec![json!(count("data") + count("binaryData"))]
        }),
        ("", "secrets") => plain(vec![col("Type", "string", "", 0), col("Data", "integer", "", 0)], |o| {
            vec![
                json!(text_at(o, "/type")),
                json!(o.get("data").and_then(Value::as_object).map_or(0, |m| m.len())),
            ]
        }),
        ("", "serviceaccounts") => plain(vec![col("Secrets", "string", "", 0)], |o| {
            vec![json!(o.get("secrets").and_then(Value::as_array).map_or(0, Vec::len))]
        }),
        ("", "services") => Printer {
            before: vec![
                col("Type", "string", "", 0),
                col("Cluster-IP", "string", "", 0),
                col("External-IP", "string", "", 0),
                col("Port(s)", "string", "", 0),
            ],
            cells: |o| {
                let kind = text_at(o, "/spec/type");
                let external: Vec<String> = o
                    .pointer("/spec/externalIPs")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
                    .unwrap_or_default();
                let external = match kind.as_str() {
                    "ExternalName" => json!(text_at(o, "/spec/externalName")),
                    "LoadBalancer" => {
                        let mut ips: Vec<String> = o
                            .pointer("/status/loadBalancer/ingress")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                                    .map(String::from)
                                    .collect()
                            })
                            .unwrap_or_default();
                        ips.extend(external);
                        json!(if ips.is_empty() {
                            "<pending>".to_string()
                        } else {
                            ips.join(",")
                        })
                    }
                    _ => or_none(external.join(",")),
                };
                let ports: Vec<String> = o
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map(|ps| {
                        ps.iter()
                            .map(|p| {
                                let protocol = p["protocol"].as_str().unwrap_or("TCP");
                                match p["nodePort"].as_i64().filter(|n| *n != 0) {
                                    Some(node) => format!("{}:{node}/{protocol}", p["port"]),
                                    None => format!("{}/{protocol}", p["port"]),
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                vec![
                    json!(kind),
                    or_none(text_at(o, "/spec/clusterIP")),
                    external,
                    or_none(ports.join(",")),
                ]
            },
            age: true,
            after: vec![wide("Selector")],
            wide: |o| vec![label_map(o.pointer("/spec/selector"))],
        },
        ("coordination.k8s.io", "leases") => plain(vec![col("Holder", "string", "", 0)], |o| {
            vec![o.pointer("/spec/holderIdentity").cloned().unwrap_or(json!(""))]
        }),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations" | "mutatingwebhookconfigurations") => {
            plain(vec![col("Webhooks", "integer", "", 0)], |o| {
                vec![json!(o.get("webhooks").and_then(Value::as_array).map_or(0, Vec::len))]
            })
        }
        // The default table of a type without a printer: the creation time as RFC 3339.
        ("apiextensions.k8s.io", "customresourcedefinitions") => Printer {
            before: vec![col("Created At", "date", "", 0)],
            cells: |o| vec![o.pointer("/metadata/creationTimestamp").cloned().unwrap_or(json!(""))],
            age: false,
            after: Vec::new(),
            wide: no_cells,
        },
        _ => plain(Vec::new(), no_cells),
    }
}

/// A printer column's cell: the value at its JSONPath; a `date` column's timestamp rendered as
/// the time since then, as kube-apiserver's CRD table convertor does (`5m`, `2d4h`).
fn cell(o: &Value, column: &PrinterColumn) -> Value {
    let value = json_path(o, &column.json_path);
    if column.type_ != "date" {
        return value;
    }
    match value.as_str().map(str::parse::<jiff::Timestamp>) {
        Some(Ok(t)) => json!(human_duration(jiff::Timestamp::now().duration_since(t).as_secs())),
        _ => value,
    }
}

fn name(o: &Value) -> Value {
    o.pointer("/metadata/name").cloned().unwrap_or(json!(""))
}

/// The Age cell: the time since creation as kube-apiserver renders it (`5s`, `3m20s`, `2d4h`).
fn created(o: &Value) -> Value {
    let Some(ts) = o.pointer("/metadata/creationTimestamp").and_then(Value::as_str) else {
        return json!("<unknown>");
    };
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => json!(human_duration(jiff::Timestamp::now().duration_since(t).as_secs())),
        Err(_) => json!("<unknown>"),
    }
}

/// apimachinery's `duration.HumanDuration`.
pub(crate) fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (mins, hours) = (secs / 60, secs / 3600);
    let days = hours / 24;
    let with = |big: i64, unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    if secs < 120 {
        format!("{secs}s")
    } else if mins < 10 {
        with(mins, "m", secs % 60, "s")
    } else if mins < 180 {
        format!("{mins}m")
    } else if hours < 8 {
        with(hours, "h", mins % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        with(days, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{days}d")
    } else if hours < 24 * 365 * 8 {
        with(days / 365, "y", days % 365, "d")
    } else {
        format!("{}y", days / 365)
    }
}

fn row(o: &Value, cells: Vec<Value>) -> Value {
    json!({
        "cells": cells,
        "object": { "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({})) },
    })
}

/// Evaluates the simple JSONPath forms printer columns use: `.a.b`, `.a[0].b`, and
/// `.a[?(@.type=="Ready")].status`.
pub(crate) fn json_path(obj: &Value, path: &str) -> Value {
    let mut cur = obj;
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else { return Value::Null };
            let inner = &after[..end];
            rest = after[end + 1..].trim_start_matches('.');
            if let Ok(i) = inner.parse::<usize>() {
                match cur.get(i) {
                    Some(v) => cur = v,
                    None => return Value::Null,
                }
            } else if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let Some((field, want)) = filter.split_once("==") else {
                    return Value::Null;
                };
                let want = want.trim().trim_matches('"').trim_matches('\'');
                let found = cur.as_array().and_then(|a| {
                    a.iter()
                        .find(|e| e.get(field.trim()).and_then(Value::as_str) == Some(want))
                });
                match found {
                    Some(v) => cur = v,
                    None => return Value::Null,
                }
            } else {
                return Value::Null;
            }
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let key = &rest[..end];
        match cur.get(key) {
            Some(v) => cur = v,
            None => return Value::Null,
        }
        rest = rest[end..].trim_start_matches('.');
    }
    cur.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_columns_are_rendered_as_ages_and_other_columns_as_values() {
        let column = |type_: &str, json_path: &str| PrinterColumn {
            name: "C".into(),
            type_: type_.into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: json_path.into(),
        };
        let an_hour_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3600);
        let o = json!({ "status": { "since": an_hour_ago.to_string(), "odd": "not a time" } });
        assert_eq!(cell(&o, &column("date", ".status.since")), json!("60m"));
        assert_eq!(cell(&o, &column("date", ".status.odd")), json!("not a time"));
        assert_eq!(
            cell(&o, &column("string", ".status.since")),
            json!(an_hour_ago.to_string())
        );
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (50 * 3600, "2d2h"),
            (400 * 86400, "400d"),
            (3 * 365 * 86400, "3y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn printer_column_paths_follow_indexes_and_filters() {
        let o = json!({ "spec": { "replicas": 3 }, "status": { "conditions": [
            { "type": "Progressing", "status": "True" }, { "type": "Ready", "status": "False" } ] } });
        assert_eq!(json_path(&o, ".spec.replicas"), json!(3));
        assert_eq!(json_path(&o, ".status.conditions[1].type"), json!("Ready"));
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            json!("False")
        );
        assert_eq!(json_path(&o, ".spec.missing"), Value::Null);
    }
}
