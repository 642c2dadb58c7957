from typing import ClassVar

from concord.settings import ServiceSettings


class ScorecardSettings(ServiceSettings):
    service: ClassVar[str] = "scorecard"
