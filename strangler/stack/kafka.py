"""Apache Kafka (KRaft, one combined broker+controller) from its jars on Maven Central."""

from __future__ import annotations

import shutil
import uuid
from importlib import resources

from strangler.settings import Settings
from strangler.stack.process import (
    ServiceStatus,
    StackError,
    dir_size,
    port_open,
    process_alive,
    read_pid,
    run_logged,
    spawn,
    terminate,
    wait_until,
)

HEALTH_TOPIC = "__strangler_health"

START_TIMEOUT_S = 600
"""After an unclean stop the broker recovers every partition before it serves: minutes when
thousands are on disk. The wait ends early if the process dies."""


class KafkaService:
    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.version = settings.kafka_version
        self.install_dir = settings.home / "kafka" / self.version
        self.libs_dir = self.install_dir / "libs"
        self.home_dir = settings.stack_dir / "kafka"
        self.data_dir = self.home_dir / "data"
        self.log_file = settings.logs_dir / "kafka.log"
        self.install_log = settings.logs_dir / "kafka-install.log"
        self.pid_file = self.home_dir / "kafka.pid"
        host, _, port = settings.kafka_bootstrap.partition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port or 9092)

    def installed(self) -> bool:
        return (self.install_dir / ".complete").exists()

    def install(self) -> None:
        """Resolve the broker's jars once with Maven into the cache."""
        if not self.installed():
            if shutil.which("mvn") is None or shutil.which("java") is None:
                raise StackError(
                    "kafka: install", "Maven (`mvn`) and Java 17 are required", self.install_log
                )
            self.install_dir.mkdir(parents=True, exist_ok=True)
            pom = self.install_dir / "pom.xml"
            pom.write_bytes(
                resources.files("strangler.stack").joinpath("kafka/pom.xml").read_bytes()
            )
            try:
                run_logged(
                    "kafka: install",
                    [
                        "mvn",
                        "-B",
                        "-q",
                        "-f",
                        str(pom),
                        f"-Dkafka.version={self.version}",
                        "dependency:copy-dependencies",
                        f"-DoutputDirectory={self.libs_dir}",
                        "-DincludeScope=runtime",
                    ],
                    self.install_log,
                    timeout=1200,
                )
            except StackError as exc:
                raise StackError(
                    "kafka: install",
                    f"Maven could not resolve kafka_2.13:{self.version}",
                    self.install_log,
                ) from exc
            (self.install_dir / ".complete").write_text(self.version)
        self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            run_logged(
                "kafka: format storage",
                [
                    *self._java(),
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    str(uuid.uuid4().hex[:22]),
                    "-c",
                    str(self.home_dir / "server.properties"),
                    "--standalone",
                ],
                self.install_log,
                timeout=180,
            )

    def _java(self) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx1g",
            f"-Dlog4j2.configurationFile={self.home_dir / 'log4j2.properties'}",
            "-cp",
            f"{self.libs_dir}/*",
        ]

    def _write_config(self) -> None:
        self.home_dir.mkdir(parents=True, exist_ok=True)
        controller = f"127.0.0.1:{self.settings.kafka_controller_port}"
        (self.home_dir / "server.properties").write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers={controller}",
                    f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{controller}",
                    f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    "num.partitions=3",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "log.retention.hours=720",
                    "",
                ]
            )
        )
        (self.home_dir / "log4j2.properties").write_text(
            "\n".join(
                [
                    "status = warn",
                    "appender.out.type = Console",
                    "appender.out.name = OUT",
                    "appender.out.layout.type = PatternLayout",
                    "appender.out.layout.pattern = [%d] %p %m (%c)%n",
                    "rootLogger.level = INFO",
                    "rootLogger.appenderRef.out.ref = OUT",
                    "logger.kafka.name = kafka",
                    "logger.kafka.level = INFO",
                    "logger.org.name = org.apache.kafka",
                    "logger.org.level = WARN",
                    "",
                ]
            )
        )

    def pid(self) -> int | None:
        return read_pid(self.pid_file, "kafka.Kafka")

    def start(self) -> None:
        pid = self.pid()
        if pid is None:
            pid = spawn(
                [*self._java(), "kafka.Kafka", str(self.home_dir / "server.properties")],
                self.log_file,
                self.pid_file,
            )
        wait_until(
            "kafka: health (create a topic, round-trip one record)",
            self.healthy,
            START_TIMEOUT_S,
            self.log_file,
            alive=lambda: pid is not None and process_alive(pid),
        )

    def healthy(self) -> bool:
        """Ready = a topic exists and one record round-trips."""
        from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
        from confluent_kafka.admin import AdminClient, NewTopic

        if not port_open(self.host, self.port):
            return False
        bootstrap = f"{self.host}:{self.port}"
        admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000})
        topics = admin.list_topics(timeout=3).topics
        if HEALTH_TOPIC not in topics:
            futures = admin.create_topics([NewTopic(HEALTH_TOPIC, 1, 1)])
            try:
                futures[HEALTH_TOPIC].result(10)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
        token = uuid.uuid4().hex.encode()
        producer = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 5000}
        )
        delivered: list[int] = []
        producer.produce(
            HEALTH_TOPIC,
            token,
            on_delivery=lambda err, msg: (
                delivered.append(msg.offset() or 0) if err is None else None
            ),
        )
        producer.flush(6)
        if not delivered:
            return False
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "strangler-health",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.assign([TopicPartition(HEALTH_TOPIC, 0, delivered[0])])
            msg = consumer.poll(5)
            return msg is not None and msg.error() is None and msg.value() == token
        finally:
            consumer.close()

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout=60)
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> ServiceStatus:
        pid = self.pid()
        healthy = False
        detail = ""
        if pid is not None:
            try:
                healthy = self.healthy()
            except Exception as exc:  # noqa: BLE001 - status reports, it does not raise
                detail = str(exc)
        return ServiceStatus(
            self.name, self.version, f"{self.host}:{self.port}", pid, self.data_dir, healthy, detail
        )

    def install_size(self) -> int:
        return dir_size(self.libs_dir)
