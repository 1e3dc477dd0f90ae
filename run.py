"""jaxbert's command line as a script, the same as the `jaxbert` command (jaxbert/cli.py, whose
MODES table lists the modes; python run.py --help prints it):

  python run.py --config=configs/quick.py --workdir=workdirs/quick     # cram (resumes if stopped)
  python run.py --workdir=workdirs/quick                               # resume with its config.json
  python run.py --mode=evaluate --workdir=workdirs/quick [--step=N]    # held-out MLM
  python run.py --mode=report --workdir=workdirs/quick                 # report.md and curves.png
  python run.py --mode=finetune --workdir=workdirs/quick               # table; saves a classifier
  python run.py --mode=predict --workdir=workdirs/quick --input=-      # classify stdin's lines
  python run.py --mode=embed --workdir=W --input=texts.txt --output=X.npy   # [rows, hidden]
  python run.py --mode=evaluate --workdir=W --classifier=NAME --input=labelled.csv
  python run.py --mode=glue --workdir=W --config=configs/glue.py --config.finetune.task=glue:DIR
  python run.py --mode=prepare --config=configs/quick.py               # build the token store only
  python run.py --mode=lr_search --config=configs/quick.py --workdir=workdirs/lr-quick  # best lr
  python run.py --mode=export --workdir=workdirs/quick --out=DIR       # in Hugging Face's layout
  python run.py --mode=import --hf=DIR --workdir=workdirs/bert         # a Hugging Face BERT
"""

from jaxbert import cli

if __name__ == "__main__":
  cli.main()
