from django.db import models

from .servers import Server


class GpuSample(models.Model):
    """One GPU's memory and utilisation at one time, from a server check.

    Raw rows (hourly=False) are one reading each. Older ones are folded into one row per
    server, GPU and hour (hourly=True) holding the hour's averages, its peaks and how many
    readings it averages; see deployments.servers.gpu_history for how long each is kept.
    """

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="gpu_samples")
    gpu_index = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    hourly = models.BooleanField(default=False)
    memory_used_mib = models.PositiveIntegerField()
    memory_total_mib = models.PositiveIntegerField()
    utilization_percent = models.PositiveSmallIntegerField()
    # The highest reading in the row's span: the reading itself for a raw row.
    memory_used_peak_mib = models.PositiveIntegerField()
    utilization_peak_percent = models.PositiveSmallIntegerField()
    sample_count = models.PositiveIntegerField(default=1)

    class Meta:
        indexes = [models.Index(fields=["server", "at"], name="gpu_sample_server_at")]

    def __str__(self) -> str:
        return f"{self.server_id} GPU {self.gpu_index} @ {self.at:%Y-%m-%d %H:%M}"
