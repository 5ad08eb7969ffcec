// (kernel family 'adamw': not written yet)
