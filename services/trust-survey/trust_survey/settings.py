from typing import ClassVar

from concord.settings import ServiceSettings


class TrustSurveySettings(ServiceSettings):
    service: ClassVar[str] = "trust_survey"
