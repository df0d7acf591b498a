from django.db import models


class DrillNote(models.Model):
    """A table the app's own migration adds, so that migrate has work to do on the restored copy."""

    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)
