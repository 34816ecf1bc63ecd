from desk.cli import main

main(prog_name="desk")
