from matcha.cli.main import main

main()
