//! Tessera's public gRPC contract: the tonic/prost code generated from
//! `proto/tessera/v1` (package `tessera.v1`) at build time, with protox.
//!
//! - [`v1`] holds the messages, enums, clients (`*_client`) and servers
//!   (`*_server`) of `SessionService`, `TokenService`, `UserService`,
//!   `KeyService`, `AuditService` (the issuer) and `VerifierService` (the
//!   verifier).
//! - [`google::api`] holds the `google.api.http` annotation types the protos
//!   use to map every RPC to a REST endpoint.
//! - [`FILE_DESCRIPTOR_SET`] is the encoded descriptor set, for
//!   tonic-reflection.

/// A module of generated code: `include_proto!` under the lints generated
/// code cannot meet.
macro_rules! generated {
    ($(#[$doc:meta])* $name:ident, $package:literal) => {
        $(#[$doc])*
        #[allow(
            missing_docs,
            unreachable_pub,
            clippy::all,
            clippy::pedantic,
            clippy::nursery,
            clippy::unwrap_used,
            clippy::dbg_macro,
            clippy::todo,
            clippy::unimplemented
        )]
        pub mod $name {
            tonic::include_proto!($package);
        }
    };
}

/// Generated code for the `tessera.*` protobuf packages.
pub mod tessera {
    generated!(
        /// Generated code for the `tessera.v1` protobuf package.
        v1,
        "tessera.v1"
    );
}

/// Generated code for the `google.*` protobuf packages Tessera's protos
/// import (other than the well-known types, which come from `prost-types`).
pub mod google {
    generated!(
        /// The HTTP mapping types of `google/api/http.proto`.
        api,
        "google.api"
    );

    generated!(
        /// `google.rpc.Status`, as Envoy's ext_authz answers carry it.
        rpc,
        "google.rpc"
    );
}

/// Envoy's ext_authz v3 API (`envoy.service.auth.v3.Authorization`), in the
/// wire-compatible subset of `proto/envoy/` the verifier serves to Envoy,
/// Istio and Envoy Gateway.
pub mod envoy {
    /// `envoy.service.*`.
    pub mod service {
        /// `envoy.service.auth.*`.
        pub mod auth {
            generated!(
                /// `envoy.service.auth.v3`: `Authorization/Check`.
                v3,
                "envoy.service.auth.v3"
            );
        }
    }
    /// `envoy.config.*`.
    pub mod config {
        /// `envoy.config.core.*`.
        pub mod core {
            generated!(
                /// `envoy.config.core.v3`: headers and addresses.
                v3,
                "envoy.config.core.v3"
            );
        }
    }
    /// `envoy.type.*`.
    pub mod r#type {
        generated!(
            /// `envoy.type.v3`: HTTP status codes.
            v3,
            "envoy.r#type.v3"
        );
    }
}

pub use tessera::v1;

/// The encoded `google.protobuf.FileDescriptorSet` of Tessera's protos and
/// everything they import, source info and extension options included. Hand
/// it to `tonic_reflection::server::Builder::register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tessera_descriptor.bin"));

#[cfg(test)]
mod tests {
    //! Checks of the contract itself, on the descriptor set the crate ships.

    use std::collections::{BTreeMap, BTreeSet};

    use prost::Message;
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{
        DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    };

    use super::FILE_DESCRIPTOR_SET;
    use crate::google::api::HttpRule;
    use crate::google::api::http_rule::Pattern;

    /// The services and RPCs implementers code against.
    const SERVICES: &[(&str, &[&str])] = &[
        ("SessionService", &["Login", "ExtendSession", "Logout"]),
        (
            "TokenService",
            &[
                "CreateToken",
                "GetToken",
                "ListTokens",
                "UpdateToken",
                "DuplicateToken",
                "EnableToken",
                "DisableToken",
                "DeleteToken",
                "RotateToken",
            ],
        ),
        (
            "UserService",
            &[
                "CreateUser",
                "GetUser",
                "ListUsers",
                "UpdateUser",
                "DeleteUser",
                "SetPassword",
            ],
        ),
        ("KeyService", &["ListKeys", "RotateKey"]),
        ("AuditService", &["ListAuditEvents"]),
        ("VerifierService", &["Verify"]),
    ];

    const PACKAGE: &str = "tessera.v1";

    // `prost_types::MethodOptions` has no extension fields and prost drops
    // unknown fields when decoding, so the `google.api.http` option (field
    // 72295728 of `MethodOptions`) is invisible through `prost_types`. These
    // mirror the descriptor messages down to `MethodOptions`, with the
    // extension declared as an ordinary field.

    #[derive(Clone, PartialEq, Message)]
    struct AnnotatedFileSet {
        #[prost(message, repeated, tag = "1")]
        file: Vec<AnnotatedFile>,
    }

    #[derive(Clone, PartialEq, Message)]
    struct AnnotatedFile {
        #[prost(string, tag = "2")]
        package: String,
        #[prost(message, repeated, tag = "6")]
        service: Vec<AnnotatedService>,
    }

    #[derive(Clone, PartialEq, Message)]
    struct AnnotatedService {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(message, repeated, tag = "2")]
        method: Vec<AnnotatedMethod>,
    }

    #[derive(Clone, PartialEq, Message)]
    struct AnnotatedMethod {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(string, tag = "2")]
        input_type: String,
        #[prost(message, optional, tag = "4")]
        options: Option<AnnotatedMethodOptions>,
    }

    #[derive(Clone, PartialEq, Message)]
    struct AnnotatedMethodOptions {
        #[prost(message, optional, tag = "72295728")]
        http: Option<HttpRule>,
    }

    fn descriptor_set() -> FileDescriptorSet {
        FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("FILE_DESCRIPTOR_SET decodes")
    }

    fn tessera_files(set: &FileDescriptorSet) -> Vec<&FileDescriptorProto> {
        let files: Vec<_> = set.file.iter().filter(|f| f.package() == PACKAGE).collect();
        assert!(
            !files.is_empty(),
            "no {PACKAGE} file in FILE_DESCRIPTOR_SET"
        );
        files
    }

    /// Every message of the set, nested ones included, by full name
    /// (`.tessera.v1.Token`).
    fn messages(set: &FileDescriptorSet) -> BTreeMap<String, &DescriptorProto> {
        fn add<'a>(
            scope: &str,
            messages: &'a [DescriptorProto],
            out: &mut BTreeMap<String, &'a DescriptorProto>,
        ) {
            for message in messages {
                let name = format!("{scope}.{}", message.name());
                add(&name, &message.nested_type, out);
                out.insert(name, message);
            }
        }
        let mut out = BTreeMap::new();
        for file in &set.file {
            add(
                &format!(".{}", file.package()),
                &file.message_type,
                &mut out,
            );
        }
        out
    }

    #[test]
    fn every_service_and_rpc_exists() {
        let set = descriptor_set();
        let found: BTreeMap<&str, BTreeSet<&str>> = tessera_files(&set)
            .iter()
            .flat_map(|file| &file.service)
            .map(|service| {
                (
                    service.name(),
                    service.method.iter().map(|m| m.name()).collect(),
                )
            })
            .collect();
        for (service, methods) in SERVICES {
            let found_methods = found
                .get(service)
                .unwrap_or_else(|| panic!("service {PACKAGE}.{service} is missing"));
            for method in *methods {
                assert!(
                    found_methods.contains(method),
                    "RPC {PACKAGE}.{service}.{method} is missing"
                );
            }
        }
    }

    /// Checks one HTTP binding of `method`; returns what is wrong with it.
    fn binding_problems(
        method: &str,
        input: &DescriptorProto,
        messages: &BTreeMap<String, &DescriptorProto>,
        rule: &HttpRule,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let (verb, path, wants_body) = match &rule.pattern {
            Some(Pattern::Get(path)) => ("GET", path, false),
            Some(Pattern::Delete(path)) => ("DELETE", path, false),
            Some(Pattern::Post(path)) => ("POST", path, true),
            Some(Pattern::Patch(path)) => ("PATCH", path, true),
            Some(Pattern::Put(path)) => ("PUT", path, true),
            Some(Pattern::Custom(_)) | None => {
                return vec![format!("{method}: binding has no standard HTTP verb")];
            }
        };
        if !path.starts_with("/v1/") {
            problems.push(format!("{method}: {verb} {path} is not under /v1/"));
        }
        match (wants_body, rule.body.as_str()) {
            (true, "*") | (false, "") => {}
            (_, body) => problems.push(format!("{method}: {verb} {path} has body {body:?}")),
        }
        // Every `{field.path}` variable must name a singular scalar field
        // of the request message.
        for variable in path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split('}').next())
        {
            let mut message = Some(input);
            let mut resolved = false;
            let segments: Vec<&str> = variable.split('.').collect();
            for (i, segment) in segments.iter().enumerate() {
                let Some(field) = message
                    .and_then(|m| m.field.iter().find(|f| f.name() == *segment))
                    .filter(|f| f.label() != Label::Repeated)
                else {
                    break;
                };
                if i + 1 == segments.len() {
                    resolved = field.r#type() != Type::Message;
                } else {
                    message = messages.get(field.type_name()).copied();
                }
            }
            if !resolved {
                problems.push(format!(
                    "{method}: {verb} {path}: {{{variable}}} is not a singular scalar field of {}",
                    input.name()
                ));
            }
        }
        problems
    }

    #[test]
    fn every_rpc_has_an_http_annotation() {
        let set = descriptor_set();
        let messages = messages(&set);
        let annotated =
            AnnotatedFileSet::decode(FILE_DESCRIPTOR_SET).expect("FILE_DESCRIPTOR_SET decodes");
        let mut checked = 0;
        let mut problems = Vec::new();
        for file in annotated.file.iter().filter(|f| f.package == PACKAGE) {
            for service in &file.service {
                for method in &service.method {
                    checked += 1;
                    let name = format!("{}.{}", service.name, method.name);
                    let Some(rule) = method.options.as_ref().and_then(|o| o.http.as_ref()) else {
                        problems.push(format!("{name}: no google.api.http option"));
                        continue;
                    };
                    let input = messages
                        .get(&method.input_type)
                        .unwrap_or_else(|| panic!("{name}: unknown input {}", method.input_type));
                    problems.extend(binding_problems(&name, input, &messages, rule));
                    for extra in &rule.additional_bindings {
                        if !extra.additional_bindings.is_empty() {
                            problems.push(format!("{name}: nested additional_bindings"));
                        }
                        problems.extend(binding_problems(&name, input, &messages, extra));
                    }
                }
            }
        }
        let expected: usize = SERVICES.iter().map(|(_, methods)| methods.len()).sum();
        assert!(
            checked >= expected,
            "only {checked} RPCs found, expected {expected}"
        );
        assert!(
            problems.is_empty(),
            "HTTP annotation problems:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn every_element_has_a_doc_comment() {
        // Paths into FileDescriptorProto, as in SourceCodeInfo.Location.path.
        const MESSAGE: i32 = 4;
        const ENUM: i32 = 5;
        const SERVICE: i32 = 6;
        const FIELD: i32 = 2; // also EnumValue in an enum, method in a service
        const NESTED_MESSAGE: i32 = 3;
        const NESTED_ENUM: i32 = 4;
        const ONEOF: i32 = 8;

        fn index(i: usize) -> i32 {
            i32::try_from(i).expect("index fits in i32")
        }

        fn enum_paths(path: &[i32], e: &EnumDescriptorProto, out: &mut Vec<(Vec<i32>, String)>) {
            out.push((path.to_vec(), format!("enum {}", e.name())));
            for (i, value) in e.value.iter().enumerate() {
                out.push((
                    [path, &[FIELD, index(i)]].concat(),
                    format!("value {}", value.name()),
                ));
            }
        }

        fn message_paths(path: &[i32], m: &DescriptorProto, out: &mut Vec<(Vec<i32>, String)>) {
            out.push((path.to_vec(), format!("message {}", m.name())));
            for (i, field) in m.field.iter().enumerate() {
                let what = format!("field {}.{}", m.name(), field.name());
                out.push(([path, &[FIELD, index(i)]].concat(), what));
            }
            // Synthetic oneofs of proto3 `optional` fields carry no comment.
            let synthetic: BTreeSet<i32> = m
                .field
                .iter()
                .filter(|f| f.proto3_optional())
                .filter_map(|f| f.oneof_index)
                .collect();
            for (i, oneof) in m.oneof_decl.iter().enumerate() {
                if !synthetic.contains(&index(i)) {
                    let what = format!("oneof {}.{}", m.name(), oneof.name());
                    out.push(([path, &[ONEOF, index(i)]].concat(), what));
                }
            }
            for (i, nested) in m.nested_type.iter().enumerate() {
                message_paths(&[path, &[NESTED_MESSAGE, index(i)]].concat(), nested, out);
            }
            for (i, nested) in m.enum_type.iter().enumerate() {
                enum_paths(&[path, &[NESTED_ENUM, index(i)]].concat(), nested, out);
            }
        }

        let set = descriptor_set();
        let mut undocumented = Vec::new();
        for file in tessera_files(&set) {
            let documented: BTreeSet<&[i32]> = file
                .source_code_info
                .as_ref()
                .expect("FILE_DESCRIPTOR_SET carries source info")
                .location
                .iter()
                .filter(|l| !l.leading_comments().trim().is_empty())
                .map(|l| l.path.as_slice())
                .collect();
            let mut elements = Vec::new();
            for (i, message) in file.message_type.iter().enumerate() {
                message_paths(&[MESSAGE, index(i)], message, &mut elements);
            }
            for (i, e) in file.enum_type.iter().enumerate() {
                enum_paths(&[ENUM, index(i)], e, &mut elements);
            }
            for (i, service) in file.service.iter().enumerate() {
                elements.push((
                    vec![SERVICE, index(i)],
                    format!("service {}", service.name()),
                ));
                for (j, method) in service.method.iter().enumerate() {
                    let what = format!("rpc {}.{}", service.name(), method.name());
                    elements.push((vec![SERVICE, index(i), FIELD, index(j)], what));
                }
            }
            undocumented.extend(
                elements
                    .into_iter()
                    .filter(|(path, _)| !documented.contains(path.as_slice()))
                    .map(|(_, what)| format!("{}: {what}", file.name())),
            );
        }
        assert!(
            undocumented.is_empty(),
            "elements without a leading doc comment:\n{}",
            undocumented.join("\n")
        );
    }
}
