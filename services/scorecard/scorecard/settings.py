from concord.settings import ServiceSettings


class ScorecardSettings(ServiceSettings):
    service: str = "scorecard"
    port: int = 8001
