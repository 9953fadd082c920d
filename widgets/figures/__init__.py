"""One module of figures per chapter, named for the chapter: ``widgets.figures.gradient_descent`` (chapter 1),
``widgets.figures.curvature`` (chapter 3). Chapter 2 draws with the shared kit of :mod:`widgets.plots` only."""
