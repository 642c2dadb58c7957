from concord.settings import ServiceSettings


class NotificationsSettings(ServiceSettings):
    service: str = "notifications"
    port: int = 8004
