//! Server reflection in both versions, each port listing only what it
//! serves: tools such as grpcurl (v1) and Python's grpcio-reflection
//! (v1alpha) see the issuer's services on the issuer and the verifier's on
//! the verifier.

use crate::support::verifier::VerifierHarness;
use crate::support::{Backend, Harness};
use tonic::transport::Channel;
use tonic_reflection::pb::{v1, v1alpha};

async fn listed_v1(channel: Channel) -> Vec<String> {
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut replies = v1::server_reflection_client::ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1 reflection answers")
        .into_inner();
    let reply = replies
        .message()
        .await
        .expect("a reply")
        .expect("one reply");
    match reply.message_response {
        Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            names.sort();
            names
        }
        other => panic!("unexpected {other:?}"),
    }
}

async fn listed_v1alpha(channel: Channel) -> Vec<String> {
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut replies = v1alpha::server_reflection_client::ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1alpha reflection answers")
        .into_inner();
    let reply = replies
        .message()
        .await
        .expect("a reply")
        .expect("one reply");
    match reply.message_response {
        Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            names.sort();
            names
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_port_lists_its_own_services_in_both_versions() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let issuer_v1 = listed_v1(issuer.channel.clone()).await;
    assert_eq!(
        issuer_v1,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "tessera.v1.AuditService",
            "tessera.v1.KeyService",
            "tessera.v1.RevocationFeedService",
            "tessera.v1.SessionService",
            "tessera.v1.TokenService",
            "tessera.v1.UserService",
        ]
    );
    let issuer_alpha = listed_v1alpha(issuer.channel.clone()).await;
    assert_eq!(
        issuer_alpha, issuer_v1,
        "both versions list the same services"
    );
    assert!(!issuer_alpha.iter().any(|s| s.contains("VerifierService")));
    for names in [
        listed_v1(verifier.channel.clone()).await,
        listed_v1alpha(verifier.channel.clone()).await,
    ] {
        assert!(
            names.contains(&"tessera.v1.VerifierService".to_owned()),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|s| s.contains("TokenService")),
            "the verifier does not advertise the issuer's services: {names:?}"
        );
    }
    issuer.stop().await;
}
