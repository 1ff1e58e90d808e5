from shopfunnel.cli import main

main()
