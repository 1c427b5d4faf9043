"""The FastAPI app. It never imports an OCR engine: it stays small and answers /health at once."""
