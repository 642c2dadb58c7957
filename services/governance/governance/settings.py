from concord.settings import ServiceSettings


class GovernanceSettings(ServiceSettings):
    service: str = "governance"
    port: int = 8002
