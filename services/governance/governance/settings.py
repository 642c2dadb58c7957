from typing import ClassVar

from concord.settings import ServiceSettings


class GovernanceSettings(ServiceSettings):
    service: ClassVar[str] = "governance"
