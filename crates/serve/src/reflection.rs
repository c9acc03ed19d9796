//! gRPC server reflection, in both versions clients speak (`v1`, and
//! `v1alpha` for Python's grpcio-reflection and older grpcurl), listing
//! only the services this process serves: the descriptors cover the whole
//! API, so left alone each port would advertise the other's services too.

use tonic_reflection::server::{Builder, Error, v1, v1alpha};

fn builder(descriptor_sets: &[&'static [u8]], services: &[&str]) -> Builder<'static> {
    let mut builder = Builder::configure();
    for set in descriptor_sets {
        builder = builder.register_encoded_file_descriptor_set(set);
    }
    for name in services {
        builder = builder.with_service_name(*name);
    }
    builder
}

/// Both reflection services for a server of `services` (fully qualified
/// names; health and reflection itself are added), described by
/// `descriptor_sets`.
pub fn services(
    descriptor_sets: &[&'static [u8]],
    services: &[&str],
) -> Result<
    (
        v1::ServerReflectionServer<impl v1::ServerReflection>,
        v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
    ),
    Error,
> {
    // Both versions are served, so each lists both: a client reading one
    // learns the other is there too.
    let mut all: Vec<&str> = services.to_vec();
    all.extend([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]);
    Ok((
        builder(descriptor_sets, &all).build_v1()?,
        builder(descriptor_sets, &all).build_v1alpha()?,
    ))
}
