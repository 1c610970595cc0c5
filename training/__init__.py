"""Offline model work: training, evaluation, run comparison, the out-of-domain check and
the ImageNet weight conversion. Uses ``core``; nothing at run time imports it except the
retraining job, through a service."""
