"""Typed settings: embedded defaults, overridden by a TOML file, then `GLASSBOX_*` environment
variables, then command-line flags (highest). Nested sections use `__` in environment names, e.g.
`GLASSBOX_CACHE__MAX_BYTES=268435456`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class LimitSettings(BaseModel):
    """Request limits: every one has a safe default and is checked before work starts."""

    max_message_bytes: int = Field(64 * 1024 * 1024, gt=0, description="largest gRPC message, both ways")
    max_image_pixels: int = Field(40_000_000, gt=0, description="largest decoded image, width × height")
    max_batch_images: int = Field(64, gt=0, description="most images in one request")


class SchedulerSettings(BaseModel):
    """The compute scheduler that owns all model work (README "Execution model", docs/operations.md)."""

    max_queue_seconds: float = Field(
        60.0,
        gt=0,
        description="estimated device seconds queued per priority class; a call beyond it is refused",
    )
    admission_safety: float = Field(
        1.5, ge=1.0, description="a call is refused unless its estimated completion × this fits its deadline"
    )
    max_unit_seconds: float = Field(
        0.05, gt=0, description="while other calls wait, a unit is cut to about this much device time"
    )
    background_min_share: float = Field(
        0.1, ge=0.0, le=1.0, description="device share background work (jobs) keeps under interactive load"
    )
    memory_budget_bytes: int = Field(
        0,
        ge=0,
        description="memory admitted calls may hold at once; 0 = memory_budget_fraction of the machine",
    )
    memory_budget_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="the budget as a fraction of the machine's (or cgroup's) memory"
    )


class AttributionSettings(BaseModel):
    """Caps and batching for attribution methods."""

    max_samples: int = Field(1024, gt=0, description="cap on SmoothGrad/LIME/KernelSHAP samples")
    max_steps: int = Field(512, gt=0, description="cap on integrated-gradients steps")
    max_perturbations: int = Field(16384, gt=0, description="cap on occlusion windows")
    memory_budget_bytes: int = Field(
        0, ge=0, description="activation memory one batched evaluation may use; 0 = a quarter of free memory"
    )


class CacheSettings(BaseModel):
    """Result cache: in-process LRU by default, Redis when `redis_url` is set."""

    enabled: bool = True
    redis_url: str = Field(
        "",
        description="redis://[user:password@]host:port/db or rediss:// (TLS); empty = in-process cache. "
        "The top-level `redis_url` (GLASSBOX_REDIS_URL, --redis-url) overrides it when set",
    )
    namespace: str = Field("glassbox", min_length=1, description="prefix of every key, e.g. per deployment")
    max_bytes: int = Field(256 * 1024 * 1024, gt=0, description="in-process cache bound")
    ttl_seconds: float = Field(3600, gt=0, description="default time to live of an entry")
    ttl_seconds_by_method: dict[str, float] = Field(
        default_factory=dict, description="per-method TTL overrides, e.g. {smoothgrad = 86400}"
    )
    redis_timeout_seconds: float = Field(0.25, gt=0, description="connect and command timeout")
    redis_backoff_initial_seconds: float = Field(0.5, gt=0, description="first pause after a Redis failure")
    redis_backoff_max_seconds: float = Field(30.0, gt=0, description="longest pause between reconnect tries")
    error_log_interval_seconds: float = Field(60.0, gt=0, description="Redis errors log once per interval")
    signing_key: SecretStr | None = Field(
        None,
        description="key (at least 16 bytes) that signs every cache value with HMAC-SHA256; a value that "
        "does not verify is a miss. Env GLASSBOX_CACHE__SIGNING_KEY. Unset, with no signing_key_file: a "
        "random key per process (replicas sharing a Redis then never use each other's results)",
    )
    signing_key_file: Path | None = Field(
        None, description="file holding the signing key (e.g. a mounted Secret); wins over signing_key"
    )

    def ttl_for(self, method: str) -> float:
        """The time to live of a result of `method`."""
        return self.ttl_seconds_by_method.get(method, self.ttl_seconds)


class GenerativeJobLimits(BaseModel):
    """Caps on the generative job kinds (feature/class visualisation, DeepDream, inversion, style
    transfer, adversarial images)."""

    max_steps: int = Field(10_000, gt=0, description="most optimisation steps one job may take")
    max_batch: int = Field(16, gt=0, description="most images one feature-visualisation job renders together")
    max_learning_rate: float = Field(10.0, gt=0, description="largest learning rate a job may ask for")
    max_side: int = Field(1024, ge=16, description="largest side of a rendered image, pixels")
    max_objective_depth: int = Field(8, gt=0, description="deepest nesting of weighted-sum objectives")
    max_style_layers: int = Field(16, gt=0, description="most style layers of a style-transfer job")
    max_cue_conflict_images: int = Field(
        1024, gt=0, description="most cue-conflict images (class pairs × images per pair) of a shape_bias job"
    )


class RobustnessJobLimits(BaseModel):
    """Caps on a robustness_evaluation job's attacks."""

    max_attacks: int = Field(8, gt=0, description="attacks per job")
    max_epsilons: int = Field(16, gt=0, description="ε values per attack")
    max_steps: int = Field(1000, gt=0, description="PGD steps per attack")
    max_restarts: int = Field(10, gt=0, description="PGD random restarts")
    max_queries: int = Field(10_000, gt=0, description="queries of the black-box Square attack per image")
    max_search_iterations: int = Field(20, gt=0, description="bisection steps of the minimal-ε search")
    max_examples: int = Field(16, ge=0, description="adversarial examples returned")


class InspectionJobLimits(BaseModel):
    """Caps on the inspection job kinds."""

    max_top_examples: int = Field(64, gt=0, description="images a top_activating job returns per unit")


class EvaluationJobLimits(BaseModel):
    """Caps on an explanation_evaluation job."""

    max_images: int = Field(256, gt=0, description="images one job evaluates")
    max_methods: int = Field(8, gt=0, description="attribution methods compared in one job")
    max_steps: int = Field(256, ge=2, description="deletion/insertion curve steps")
    max_fractions: int = Field(32, gt=0, description="ROAD removal fractions")
    max_regions: int = Field(8, ge=0, description="extra localisation regions")
    max_randomisation_images: int = Field(64, gt=0, description="images of the model-randomisation check")
    max_sensitivity_samples: int = Field(64, gt=0, description="perturbations of the max-sensitivity metric")
    max_examples: int = Field(8, ge=0, description="example images drawn in the report")


class JobLimitSettings(BaseModel):
    """Per-kind caps every job is validated against, on the server before it is queued and again in the
    worker that runs it (`glassbox worker` reads the same settings)."""

    generative: GenerativeJobLimits = GenerativeJobLimits()
    robustness: RobustnessJobLimits = RobustnessJobLimits()
    inspection: InspectionJobLimits = InspectionJobLimits()
    evaluation: EvaluationJobLimits = EvaluationJobLimits()


class JobSettings(BaseModel):
    """Long-running jobs: worker threads inside `glassbox serve` by default, an RQ queue on Redis served by
    `glassbox worker` processes when `redis_url` is set (see docs/jobs.md)."""

    redis_url: str = Field(
        "", description="redis:// or rediss:// URL of the job queue and job state; empty = in-process engine"
    )
    namespace: str = Field(
        "glassbox", min_length=1, description="prefix of every key and of the RQ queue name"
    )
    worker_threads: int = Field(2, gt=0, description="jobs run at once by the in-process engine")
    queue_capacity: int = Field(
        64, gt=0, description="queued (not yet running) jobs; more get RESOURCE_EXHAUSTED"
    )
    result_ttl_seconds: float = Field(
        86400.0, gt=0, description="how long a finished job and its result are kept; then NOT_FOUND"
    )
    min_preview_every_steps: int = Field(1, gt=0, description="smallest preview interval WatchJob accepts")
    max_preview_every_steps: int = Field(
        100_000, gt=0, description="largest preview interval WatchJob accepts"
    )
    max_attempts: int = Field(2, gt=0, description="runs of a job whose worker is lost; 1 = never retried")
    heartbeat_seconds: float = Field(5.0, gt=0, description="how often a worker proves it is alive")
    visibility_timeout_seconds: float = Field(
        30.0, gt=0, description="a running job whose worker has not beaten for this long is retried or failed"
    )
    max_run_seconds: int = Field(86400, gt=0, description="a job running longer is stopped and FAILED")
    deterministic: bool = Field(
        True,
        description="`glassbox serve` and `glassbox worker` use torch's deterministic algorithms (no cuDNN "
        "autotuning), so a job gives the same result on every run on the same hardware; False trades that "
        "for speed on GPUs",
    )
    page_size_max: int = Field(1000, gt=0, description="largest ListJobs page")
    watch_heartbeat_seconds: float = Field(
        15.0, gt=0, description="a WatchJob stream repeats the job (heartbeat) after this long without news"
    )
    limits: JobLimitSettings = JobLimitSettings()

    @model_validator(mode="after")
    def _consistent(self) -> JobSettings:
        if self.min_preview_every_steps > self.max_preview_every_steps:
            raise ValueError("jobs.min_preview_every_steps must not exceed jobs.max_preview_every_steps")
        if self.visibility_timeout_seconds <= self.heartbeat_seconds:
            raise ValueError("jobs.visibility_timeout_seconds must exceed jobs.heartbeat_seconds")
        return self


class MetricsSettings(BaseModel):
    """Prometheus exposition on an HTTP port of its own: 9464, not Prometheus' own 9090."""

    enabled: bool = Field(True, description="serve /metrics")
    port: int = Field(9464, ge=0, le=65535, description="port of /metrics; 0 = an ephemeral port (tests)")
    address: str = "127.0.0.1"


class HttpSettings(BaseModel):
    """The HTTP/JSON gateway (docs/clients.md): gRPC-JSON transcoding of the API, the web page at `/`
    and the OpenAPI document, calling the gRPC server in the same process. Off unless enabled."""

    enabled: bool = Field(False, description="serve the HTTP/JSON gateway and the web page")
    address: str = Field("127.0.0.1:8080", description="host:port of the gateway (port 0 = any free port)")
    max_body_bytes: int = Field(
        0, ge=0, description="largest request body; 0 = limits.max_message_bytes plus base64's growth"
    )
    call_timeout_seconds: float = Field(
        300.0, gt=0, description="deadline of a unary call that sends no grpc-timeout header"
    )


class RobustnessSettings(BaseModel):
    """Monitoring (docs/monitoring.md): models whose model.toml has a [monitoring] section are
    evaluated at start-up when a loaded version has no history yet, then on their schedule."""

    monitoring: bool = Field(True, description="run the evaluations model.toml [monitoring] sections ask for")
    redis_url: str = Field(
        "", description="redis:// URL of the history; empty = jobs.redis_url, or in-process if that is empty"
    )
    namespace: str = Field("glassbox", min_length=1, description="prefix of the history keys")
    max_records_per_model: int = Field(1000, gt=0, description="history entries kept per model")
    check_interval_seconds: float = Field(
        60.0, gt=0, description="how often the monitor looks for due evaluations and finished ones"
    )


class SecuritySettings(BaseModel):
    """TLS / mutual TLS on the gRPC port and bearer-token authentication. Both are off by default, which
    is safe only because the default address is loopback; see docs/deployment.md."""

    tls_cert: Path | None = Field(None, description="PEM certificate chain; with tls_key, TLS is on")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    tls_client_ca: Path | None = Field(
        None, description="PEM CA bundle client certificates must chain to (needs require_client_cert)"
    )
    require_client_cert: bool = Field(
        False,
        description="mutual TLS: every client presents a certificate that verifies against tls_client_ca, "
        "or the handshake fails",
    )
    token_file: Path | None = Field(
        None, description="bearer tokens, one per line: the token itself or `sha256:<hex digest>`; # comments"
    )
    tokens: list[SecretStr] = Field(
        default_factory=list, description="more tokens, same forms; env GLASSBOX_SECURITY__TOKENS='[\"...\"]'"
    )
    reflection_requires_token: bool = Field(True, description="False exempts server reflection from tokens")
    admin_principals: list[str] = Field(
        default_factory=list,
        description="principals with the admin scope (see every job): token names, or client certificate "
        "subjects as GetServerInfo's caller.principal shows them; token file entries can also say `admin`",
    )

    @model_validator(mode="after")
    def _complete(self) -> SecuritySettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("security.tls_cert and security.tls_key must be set together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("security.tls_client_ca needs security.tls_cert and security.tls_key")
        if self.require_client_cert and self.tls_client_ca is None:
            raise ValueError("security.require_client_cert needs security.tls_client_ca")
        if self.tls_client_ca is not None and not self.require_client_cert:
            raise ValueError(
                "security.tls_client_ca is set but security.require_client_cert is not: grpcio can ask a "
                "client for a certificate only by requiring one, so an optional certificate would never be "
                "requested or checked against the CA (one from any CA would pass unseen). Set "
                "security.require_client_cert = true for mutual TLS, or remove security.tls_client_ca"
            )
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None

    @property
    def tokens_enabled(self) -> bool:
        return self.token_file is not None or bool(self.tokens)


class Settings(BaseSettings):
    """Everything `glassbox serve` needs, with embedded defaults that run the shipped models."""

    model_config = SettingsConfigDict(
        env_prefix="GLASSBOX_", env_nested_delimiter="__", extra="forbid", populate_by_name=True
    )

    address: str = Field("127.0.0.1:50051", description="host:port the gRPC server listens on")
    model_repository: Path = Field(Path("models"), description="root of the model repository")
    model_repository_poll_seconds: float = Field(
        0.0, ge=0, description="scan the repository for new versions this often; 0 = only at start-up"
    )
    worker_threads: int = Field(
        16, gt=0, description="threads for blocking I/O beside the event loop (decoding, cache, job store)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when present")
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads; 0 = torch's default")
    grace_period_seconds: float = Field(10.0, ge=0, description="time in-flight calls get on SIGTERM")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    replicas: int = Field(
        1,
        gt=0,
        description="how many replicas serve this address (a hint, e.g. GLASSBOX_REPLICAS from the "
        "deployment); above 1 with the in-process job engine, start-up warns that job ids resolve only "
        "on their replica",
    )
    reflection: bool = True
    limits: LimitSettings = LimitSettings()
    attribution: AttributionSettings = AttributionSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    cache: CacheSettings = CacheSettings()
    metrics: MetricsSettings = MetricsSettings()
    jobs: JobSettings = JobSettings()
    security: SecuritySettings = SecuritySettings()
    robustness: RobustnessSettings = RobustnessSettings()
    http: HttpSettings = HttpSettings()
    redis_url: str = Field(
        "",
        validation_alias=AliasChoices("GLASSBOX_REDIS_URL"),
        description="shorthand for cache.redis_url (env GLASSBOX_REDIS_URL, flag --redis-url); wins when set",
    )

    @model_validator(mode="after")
    def _redis_shorthand(self) -> Settings:
        if self.redis_url:
            self.cache = self.cache.model_copy(update={"redis_url": self.redis_url})
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Defaults < TOML file < GLASSBOX_* environment < explicit overrides (flags)."""
    from_file: dict[str, Any] = {}
    if config_file is not None:
        from_file = tomllib.loads(config_file.read_text(encoding="utf-8"))
    env_only = Settings()
    merged = _deep_merge(from_file, env_only.model_dump(exclude_unset=True))
    return Settings(**_deep_merge(merged, {k: v for k, v in overrides.items() if v is not None}))


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
