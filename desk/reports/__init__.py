"""Reports that read and schedule: hours, the weekly client report and its chart, the
managers' digest, the decision log. Nothing here changes a ticket."""
