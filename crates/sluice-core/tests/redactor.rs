//! A loaded project's `Redactor` knows every secret the project and its environment hold.

use sluice_core::{Environment, KindRegistry, Project};

#[test]
fn a_loaded_project_knows_every_secret_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "sluice.yaml",
        "name: t
metadata: postgres://sluice:meta-pw-1@db:5432/meta
lineage: { url: \"https://lineage.example.com/api?api_key=lineage-key-2\" }
alerts:
  slack: { webhook: \"https://hooks.example.com/services/T1/B2/hook-secret-3\" }
  mail: { email: { smtp: \"smtp://mailer:smtp-pw-4@127.0.0.1:25\", from: a@b.c, to: [d@e.f] } }
",
    );
    write(
        "connections.yaml",
        "shop: postgres://loader:file-pw-5@127.0.0.1:5432/shop\napi: https://api.example.com/v1?token=api-tok-6&page=1\n",
    );
    write(
        "pipelines/events.yaml",
        "stream: events
source:
  kafka:
    brokers: b
    topic: t
    group: g
    format: avro
    schema_registry: \"https://reg:registry-pw-7@registry.example.com\"
    properties: { sasl.password: sasl-pw-8, sasl.username: kafka-user }
require: [id]
sink: { into: shop, table: events }
",
    );
    let env = Environment::from_vars([
        ("SLUICE_API_TOKEN", "api-token-9"),
        (
            "SLUICE_CONN_LEGACY",
            "mysql://app:env-pw-10@127.0.0.1:3306/prod",
        ),
    ]);
    let project = Project::load_with(dir.path(), &env, |_, _| KindRegistry::default()).unwrap();
    assert!(project.diagnostics.is_empty(), "{:?}", project.diagnostics);
    assert_eq!(project.streams.len(), 1);

    let secrets = [
        "meta-pw-1",
        "lineage-key-2",
        "https://hooks.example.com/services/T1/B2/hook-secret-3",
        "smtp-pw-4",
        "file-pw-5",
        "api-tok-6",
        "registry-pw-7",
        "sasl-pw-8",
        "api-token-9",
        "env-pw-10",
    ];
    let text = secrets.join(" | ");
    let masked = project.redactor.redact(&text);
    assert_eq!(masked, vec!["***"; secrets.len()].join(" | "), "{masked}");
    // What is not a secret stays readable.
    let plain = "kafka-user loader https://hooks.example.com/services page=1";
    assert_eq!(project.redactor.redact(plain), plain);
}

#[test]
fn problems_quote_urls_without_their_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "sluice.yaml",
        "name: t\nlineage: { url: \"ftp://u:lineage-pw@x\" }\n",
    );
    write(
        "pipelines/events.yaml",
        "stream: events\nsource: { kafka: { brokers: b, topic: t, group: g, format: avro, schema_registry: \"ftp://u:registry-pw@x\" } }\nrequire: [id]\nsink: { into: warehouse, table: events }\n",
    );
    let env = Environment::default();
    let kinds = |_: &_, _: &_| KindRegistry::default();
    let Err(problems) = Project::load_with(dir.path(), &env, kinds) else {
        panic!("an ftp:// lineage URL is refused");
    };
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        text[0].contains("`ftp://u:***@x` is not an http:// or https:// URL"),
        "{text:?}"
    );

    write("sluice.yaml", "name: t\n");
    let project = Project::load_with(dir.path(), &env, kinds).unwrap();
    let text: Vec<String> = project
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        text.iter()
            .any(|t| t.contains("`ftp://u:***@x` is not an http:// or https:// URL")),
        "{text:?}"
    );
    assert!(!text.join("\n").contains("registry-pw"), "{text:?}");
}
