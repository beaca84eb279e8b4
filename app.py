"""autoquant's browser view, from a source checkout:

    streamlit run app.py                       # reads ./runs
    streamlit run app.py -- --runs-dir DIR

The app itself lives in the package (autoquant/app/); `autoquant app` starts the same page.
"""

import runpy

from autoquant.app import PAGE

runpy.run_path(str(PAGE), run_name="__main__")
