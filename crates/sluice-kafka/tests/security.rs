//! The librdkafka that sluice links speaks TLS and SASL (PLAIN, SCRAM): a stream's
//! `properties:` such as `security.protocol: SASL_SSL` reach a client that can honour them.

use rdkafka::ClientConfig;
use rdkafka::consumer::BaseConsumer;

#[test]
fn librdkafka_is_built_with_tls_and_sasl() {
    let features = ClientConfig::new()
        .create_native_config()
        .expect("a native config")
        .get("builtin.features")
        .expect("builtin.features");
    for wanted in ["ssl", "sasl_plain", "sasl_scram"] {
        assert!(
            features.split(',').any(|f| f == wanted),
            "librdkafka lacks `{wanted}`: {features}"
        );
    }
    // A client configured as managed brokers require (creating it checks the properties; it
    // connects only when used).
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let consumer: Result<BaseConsumer, _> = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("group.id", "sluice-security-test")
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", mechanism)
            .set("sasl.username", "user")
            .set("sasl.password", "secret")
            .create();
        assert!(consumer.is_ok(), "{mechanism}: {:?}", consumer.err());
    }
}
