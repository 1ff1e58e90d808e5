from shopfunnel.cli import run

if __name__ == "__main__":  # not when a worker process re-imports it (multiprocessing spawn)
    run()
