"""Kafka client authentication settings: validated at start-up and accepted by librdkafka as given."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from servicekit.config import BaseConfig, ConfigError
from servicekit.kafka import consumer_config, producer_config

BASE = {"DATABASE_URL": "postgresql+psycopg://u:secret@db/x"}


def test_plaintext_is_the_default_and_adds_no_credentials():
    config = BaseConfig.from_env(BASE)
    assert config.kafka_security() == {"security.protocol": "PLAINTEXT"}


def test_sasl_scram_settings_reach_every_client_and_librdkafka_accepts_them():
    config = BaseConfig.from_env(
        {
            **BASE,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_USERNAME": "user-service",
            "KAFKA_SASL_PASSWORD": "s3cret",
        }
    )
    security = config.kafka_security()
    assert security == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "user-service",
        "sasl.password": "s3cret",
    }
    # librdkafka refuses unknown or invalid properties when a client is built.
    Producer(producer_config("127.0.0.1:1", "t", security))
    Consumer(consumer_config("127.0.0.1:1", "g", "t", security)).close()
    AdminClient({**security, "bootstrap.servers": "127.0.0.1:1"})


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAIN"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTIFICATE_LOCATION": "/c.pem"}, "go together"),
        ({"KAFKA_SSL_CA_LOCATION": "/ca.pem"}, "need KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "change-me"},
            "KAFKA_SASL_PASSWORD holds a placeholder",
        ),
    ],
)
def test_inconsistent_kafka_security_settings_are_refused_at_start_up(environ, complaint):
    with pytest.raises(ConfigError, match=complaint):
        BaseConfig.from_env({**BASE, **environ})
