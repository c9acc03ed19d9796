//! Compiles `proto/` (at the workspace root) with protox, a pure-Rust
//! protobuf compiler, so no system `protoc` is needed.
//!
//! Besides the tonic/prost code it writes `$OUT_DIR/tessera_descriptor.bin`,
//! the encoded `FileDescriptorSet` (with imports and source info) that
//! tonic-reflection serves and `FILE_DESCRIPTOR_SET` exposes.

use std::error::Error;
use std::path::PathBuf;

/// The `.proto` files that make up the public contract; their imports
/// (`google/api/*`, the well-known types) are pulled in automatically.
const PROTOS: &[&str] = &[
    "tessera/v1/common.proto",
    "tessera/v1/issuer.proto",
    "tessera/v1/verifier.proto",
];

/// Envoy's ext_authz API, in the subset the verifier serves: compiled on
/// its own so it stays out of Tessera's descriptor set (reflection and the
/// contract's checks cover Tessera's own services only).
const ENVOY_PROTOS: &[&str] = &["envoy/service/auth/v3/external_auth.proto"];

fn main() {
    if let Err(error) = run() {
        // protox errors render file, line and column in their Display form.
        eprintln!("error: failed to compile the Tessera protos: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest_dir.join("../../proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    println!("cargo:rerun-if-changed={}", proto_dir.display());
    println!("cargo:rerun-if-changed=build.rs");

    let mut compiler = protox::Compiler::new([&proto_dir])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;

    // `encode_file_descriptor_set` keeps extension options such as
    // `google.api.http`; re-encoding the `prost_types` set below would drop
    // them, since prost does not keep unknown fields.
    std::fs::write(
        out_dir.join("tessera_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(compiler.file_descriptor_set())?;

    let mut envoy = protox::Compiler::new([&proto_dir])?;
    envoy.include_imports(true);
    envoy.open_files(ENVOY_PROTOS)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(envoy.file_descriptor_set())?;
    Ok(())
}
