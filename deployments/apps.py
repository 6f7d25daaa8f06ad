from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployments"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects login/logout auditing)

        # The product's pipelines register themselves on import, in web and worker alike.
        from .pipelines import (  # noqa: F401
            chatbot_publish,
            dataset_import,
            idle_steps,
            model_launch,
            providers_sync,
            server_prepare,
            stack_backup,
            stack_deploy,
            stack_restart,
            stack_restore,
            stack_teardown,
        )
