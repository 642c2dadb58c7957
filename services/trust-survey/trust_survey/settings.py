from concord.settings import ServiceSettings


class TrustSurveySettings(ServiceSettings):
    service: str = "trust_survey"
    port: int = 8003
