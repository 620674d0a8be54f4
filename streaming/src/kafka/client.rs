//! The librdkafka settings every BetFlow Kafka client shares: the bootstrap
//! servers and, for clusters that require them, TLS and SASL
//! ([`super::settings::KafkaSettings`]). The embedded tansu needs neither; a managed cluster (MSK,
//! Confluent Cloud, Aiven) typically wants `sasl_ssl` with SCRAM or PLAIN.

/// Environment variables and the librdkafka properties they set, when set
/// and not blank. Values are passed as they are: librdkafka checks them
/// when a client is created and names the property it rejects.
pub const SECURITY_SETTINGS: &[(&str, &str)] = &[
    // plaintext (default), ssl, sasl_plaintext or sasl_ssl.
    ("KAFKA_SECURITY_PROTOCOL", "security.protocol"),
    // PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    ("KAFKA_SASL_MECHANISM", "sasl.mechanism"),
    ("KAFKA_SASL_USERNAME", "sasl.username"),
    ("KAFKA_SASL_PASSWORD", "sasl.password"),
    // PEM CA bundle to verify the brokers with (default: OpenSSL's own).
    ("KAFKA_SSL_CA_LOCATION", "ssl.ca.location"),
    // Client certificate and key, for clusters that authenticate by TLS.
    ("KAFKA_SSL_CERTIFICATE_LOCATION", "ssl.certificate.location"),
    ("KAFKA_SSL_KEY_LOCATION", "ssl.key.location"),
    ("KAFKA_SSL_KEY_PASSWORD", "ssl.key.password"),
    // `https` (default) checks the broker's host name; empty string is
    // not accepted here, so `none` turns the check off.
    (
        "KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM",
        "ssl.endpoint.identification.algorithm",
    ),
];

#[cfg(test)]
mod tests {
    use orchestrator::setting::Vars;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::producer::FutureProducer;

    use crate::kafka::settings::KafkaSettings;

    fn config_with(vars: &[(&str, &str)]) -> ClientConfig {
        let env = Vars::new(vars.iter().copied());
        KafkaSettings::resolve("broker-1:9093,broker-2:9093", &env)
            .expect("valid settings")
            .client_config()
    }

    #[test]
    fn without_settings_only_the_brokers_are_set() {
        let config = config_with(&[]);
        assert_eq!(
            config.get("bootstrap.servers"),
            Some("broker-1:9093,broker-2:9093")
        );
        assert_eq!(config.get("security.protocol"), None);
        assert_eq!(config.config_map().len(), 1);
    }

    #[test]
    fn sasl_and_tls_settings_reach_the_client_and_blank_ones_do_not() {
        let config = config_with(&[
            ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("KAFKA_SASL_MECHANISM", " SCRAM-SHA-512 "),
            ("KAFKA_SASL_USERNAME", "betflow"),
            ("KAFKA_SASL_PASSWORD", "s3cret"),
            ("KAFKA_SSL_CA_LOCATION", ""),
        ]);
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.username"), Some("betflow"));
        assert_eq!(config.get("sasl.password"), Some("s3cret"));
        assert_eq!(config.get("ssl.ca.location"), None);
    }

    /// Creating a client checks its settings without connecting, so this
    /// shows the build has TLS and SCRAM (librdkafka rejects `sasl_ssl`
    /// and SCRAM when built without OpenSSL).
    #[test]
    fn clients_accept_tls_with_scram_and_reject_an_unknown_protocol() {
        let secure = config_with(&[
            ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"),
            ("KAFKA_SASL_USERNAME", "betflow"),
            ("KAFKA_SASL_PASSWORD", "s3cret"),
        ]);
        let _producer: FutureProducer = secure.create().expect("a producer over TLS with SCRAM");
        let mut consumer = secure.clone();
        consumer.set("group.id", "betflow-test");
        let _consumer: BaseConsumer = consumer.create().expect("a consumer over TLS with SCRAM");

        let wrong = config_with(&[("KAFKA_SECURITY_PROTOCOL", "carrier_pigeon")]);
        let error = wrong
            .create::<FutureProducer>()
            .err()
            .expect("an unknown protocol is refused");
        assert!(error.to_string().contains("security.protocol"), "{error}");
    }
}
