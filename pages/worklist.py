from dashboard.worklist_page import render

render()
