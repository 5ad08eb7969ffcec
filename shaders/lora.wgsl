// (kernel family 'lora': not written yet)
